import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HeraldClient } from "../src/client/publisher.js";
import { HeraldError } from "../src/errors.js";
import { Outbox } from "../src/storage/outbox.js";
import { collectIds, linkUp, startTestBroker, waitFor } from "./helpers/broker.js";
import { freePorts, ROOT, serveEnv, startServe } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("disk full under the outbox", () => {
  it("answers STORAGE_FULL, acknowledges nothing it did not store, and recovers when space is freed", {
    timeout: 120_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-full-"));
    const mnt = join(dir, "mnt");
    mkdirSync(mnt);
    // A real small filesystem (CI runs as root): SQLite sees ENOSPC exactly as on a full disk.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt]);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => void execFileSync("umount", ["-l", mnt]));
    const tb = await startTestBroker({ outbox: { path: join(mnt, "outbox.db") } });
    cleanups.push(() => tb.stop());
    const seen = collectIds(tb.subscriber(["herald"]));
    const client = tb.client({ retries: 0, timeoutMs: 5000 });
    await linkUp(client, [seen.ids]);
    const free = statfsSync(mnt).bavail * statfsSync(mnt).bsize;
    writeFileSync(join(mnt, "filler"), Buffer.alloc(Math.max(0, free - 256 * 1024)));
    const acked: string[] = [];
    const codes = new Set<string>();
    const body = { pad: "x".repeat(8000) };
    for (let i = 0; i < 400 && !codes.has("STORAGE_FULL"); i++) {
      const results = await client.publishMany(
        Array.from({ length: 5 }, () => ({ topic: "full.test", body })),
      );
      for (const r of results) {
        if (r instanceof HeraldError) codes.add(r.code);
        else acked.push(r.id);
      }
    }
    expect([...codes]).toEqual(["STORAGE_FULL"]);
    expect(acked.length).toBeGreaterThan(0);
    rmSync(join(mnt, "filler"));
    // Accepting resumes once space is freed (the error is retryable, the outbox is not in fail-stop).
    let after: string | undefined;
    await waitFor(() => false, 0);
    for (let i = 0; i < 50 && after === undefined; i++) {
      after = await client.publish("full.after", body).then(
        (a) => a.id,
        () => undefined,
      );
    }
    expect(after).toBeDefined();
    acked.push(after!);
    expect(await waitFor(() => acked.every((id) => seen.ids.includes(id)), 20_000)).toBe(true);
    await tb.stop();
    cleanups.splice(cleanups.length - 1, 1);
    // Everything acknowledged is in the outbox, and the file is sound.
    const ob = Outbox.open({ path: join(mnt, "outbox.db"), failpoint: "" });
    const stored = new Set(ob.read(0, 100_000).map((s) => s.message.id));
    ob.close();
    expect(acked.filter((id) => !stored.has(id))).toEqual([]);
  });
});

describe("SIGTERM mid-burst", () => {
  it("stops accepting with clear replies, exits cleanly, and delivers every acknowledged message after restart", {
    timeout: 120_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-term-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [hp, lp] = await freePorts(2);
    const env = serveEnv(dir, { herald: hp!, legacy: lp! });
    const serve = await startServe(env);
    cleanups.push(() => void serve.child.kill("SIGKILL"));
    const tb = { ids: [] as string[] };
    const { Subscriber } = await import("../src/client/subscriber.js");
    const { ZmqSubscribeTransport } = await import("../src/transport/zeromq-sub.js");
    const sub = new Subscriber({
      sources: [
        new ZmqSubscribeTransport({ name: "h", endpoints: [`tcp://127.0.0.1:${hp}`], format: "herald" }),
      ],
    });
    cleanups.push(() => sub.close());
    const got = collectIds(sub);
    tb.ids = got.ids;
    const probe = new HeraldClient({ endpoint: serve.submit });
    await linkUp(probe, [got.ids]);
    await probe.close();
    const pub = spawn(
      process.execPath,
      [join(ROOT, "test", "peers", "node_publish.mjs"), serve.submit, "term.test", "20000", "20", "500", "0"],
      {
        stdio: ["ignore", "pipe", "inherit"],
        env: { ...process.env, STOP_ON_DOWN: "1" },
      },
    );
    let out = "";
    pub.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const pubDone = new Promise((r) => pub.on("close", r));
    await waitFor(() => out.split("\n").length > 2000, 60_000);
    serve.child.kill("SIGTERM");
    // Exits by itself, cleanly (bounded wait, not a timing assertion).
    expect(await serve.exited).toBe(0);
    expect(serve.stderr()).toMatch(/broker stopped/);
    await pubDone;
    const lines = out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { ack?: string; err?: string; code?: string });
    const acked = lines.filter((l) => l.ack).map((l) => l.ack!);
    const errs = new Set(lines.filter((l) => l.err).map((l) => l.code));
    // Every message the publisher attempted ended acknowledged or with an error; none left undecided.
    expect(acked.length + lines.filter((l) => l.err).length).toBe(lines.length);
    // SIGTERM went out once 2,000 lines (all acks until then) were printed; the broker may refuse the
    // very next one, so 2,000 is the least (was "more than 2,000": failed once when it did).
    expect(acked.length).toBeGreaterThanOrEqual(2000);
    expect(acked.length).toBeLessThan(20000);
    expect([...errs].every((c) => ["SHUTTING_DOWN", "TIMEOUT", "NO_BROKER"].includes(c!))).toBe(true);
    const again = await startServe(env);
    cleanups.push(() => void again.child.kill("SIGKILL"));
    expect(await waitFor(() => acked.every((id) => got.ids.includes(id)), 30_000)).toBe(true);
    again.child.kill("SIGTERM");
    expect(await again.exited).toBe(0);
  });
});
