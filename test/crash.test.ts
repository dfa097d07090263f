import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { HeraldClient } from "../src/client/publisher.js";
import { Subscriber } from "../src/client/subscriber.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { collectIds, linkUp, waitFor } from "./helpers/broker.js";
import { freePorts, ROOT, type ServeProcess, serveEnv, startServe } from "./helpers/serve.js";

const PUBLISHERS = 4;
const PER_PUBLISHER = 5000;

interface Ledger {
  acked: Set<string>;
  errors: Map<string, string>;
  done: Promise<void>;
}

/** A publisher process that prints {"ack": id} / {"err": id, "code": C} lines; long timeouts ride out the restart. */
function publisher(submit: string, topic: string): Ledger {
  const acked = new Set<string>();
  const errors = new Map<string, string>();
  const child = spawn(
    process.execPath,
    [
      join(ROOT, "test", "peers", "node_publish.mjs"),
      submit,
      topic,
      String(PER_PUBLISHER),
      "50",
      "1500",
      "20",
    ],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let buf = "";
  child.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split("\n");
    buf = lines.pop() ?? "";
    for (const l of lines) {
      if (!l.startsWith("{")) continue;
      const o = JSON.parse(l) as { ack?: string; err?: string; code?: string };
      if (o.ack) acked.add(o.ack);
      if (o.err) errors.set(o.err, o.code ?? "?");
    }
  });
  const done = new Promise<void>((res, rej) =>
    child.on("close", (code) => (code === 0 ? res() : rej(new Error(`publisher exited ${code}`)))),
  );
  return { acked, errors, done };
}

describe("kill -9 of the broker mid-burst", () => {
  const dirs: string[] = [];
  const procs: ServeProcess[] = [];
  afterAll(async () => {
    for (const p of procs) p.child.kill("SIGKILL");
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it(`loses no acknowledged message of ${PUBLISHERS * PER_PUBLISHER} from ${PUBLISHERS} processes`, {
    timeout: 300_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-crash-"));
    dirs.push(dir);
    const [hp, lp] = await freePorts(2);
    const env = serveEnv(dir, { herald: hp!, legacy: lp! });
    let serve = await startServe(env);
    procs.push(serve);
    const sub = (format: "herald" | "legacy", port: number): Subscriber =>
      new Subscriber({
        sources: [
          new ZmqSubscribeTransport({ name: format, endpoints: [`tcp://127.0.0.1:${port}`], format }),
        ],
      });
    const herald = sub("herald", hp!);
    const legacy = sub("legacy", lp!);
    const h = collectIds(herald);
    const l = collectIds(legacy);
    const probe = new HeraldClient({ endpoint: serve.submit });
    await linkUp(probe, [h.ids, l.ids]);
    await probe.close();

    const ledgers = Array.from({ length: PUBLISHERS }, (_, i) => publisher(serve.submit, `crash.p${i}`));
    const ackedCount = (): number => ledgers.reduce((n, g) => n + g.acked.size, 0);
    // Kill in the middle of the burst: once a quarter of the messages are acknowledged.
    expect(await waitFor(() => ackedCount() >= (PUBLISHERS * PER_PUBLISHER) / 4, 120_000)).toBe(true);
    serve.child.kill("SIGKILL");
    await serve.exited;
    const atKill = ackedCount();
    serve = await startServe(env);
    procs.push(serve);
    await Promise.all(ledgers.map((g) => g.done));

    const acked = new Set(ledgers.flatMap((g) => [...g.acked]));
    const errored = new Map(ledgers.flatMap((g) => [...g.errors]));
    // Every publish ended acknowledged or with an error: nothing left undecided.
    expect(acked.size + errored.size).toBe(PUBLISHERS * PER_PUBLISHER);
    const seenAll = await waitFor(() => {
      const hs = new Set(h.ids);
      const ls = new Set(l.ids);
      return [...acked].every((id) => hs.has(id) && ls.has(id));
    }, 60_000);
    const hs = new Set(h.ids);
    const ls = new Set(l.ids);
    const lost = [...acked].filter((id) => !hs.has(id));
    const lostLegacy = [...acked].filter((id) => !ls.has(id));
    console.log(
      `crash test: acked ${acked.size} (${atKill} before the kill), errors ${errored.size} ${JSON.stringify([...new Set(errored.values())])}, ` +
        `herald received ${hs.size} distinct (${herald.stats().duplicates} duplicates dropped), lost ${lost.length}, legacy lost ${lostLegacy.length}`,
    );
    await herald.close();
    await legacy.close();
    expect(lost).toEqual([]);
    expect(lostLegacy).toEqual([]);
    expect(seenAll).toBe(true);
    serve.child.kill("SIGTERM");
    expect(await serve.exited).toBe(0);
  });
});
