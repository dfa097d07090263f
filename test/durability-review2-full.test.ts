/**
 * Durability review 2, finding 5: a full disk was invisible to the operator. Clients got STORAGE_FULL, but
 * nothing was logged, `herald status` and /readyz said healthy, and a stop on the full disk could not write
 * its clean-close record without a word (the next start then resent up to 10,000 messages as after a crash).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Broker } from "../src/broker/broker.js";
import { renderMetrics, startMetricsServer } from "../src/broker/metrics.js";
import { StorageRefusals } from "../src/broker/status-refusals.js";
import { render } from "../src/cli/status.js";
import { BrokerUnavailableError } from "../src/errors.js";
import { writeCleanClose } from "../src/storage/clean-close.js";
import { Outbox } from "../src/storage/outbox.js";
import type { AppendResult } from "../src/storage/types.js";
import { createLogger } from "../src/util/log.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { http } from "./helpers/metrics.js";
import { freePorts } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function logged(): { log: ReturnType<typeof createLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = createLogger({ format: "json", level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  return { log, lines };
}

const full = new BrokerUnavailableError("STORAGE_FULL", "the outbox /x is out of space: free disk space", {
  retryable: true,
});
const refusedAll = (n: number): AppendResult[] =>
  Array.from({ length: n }, (_, i) => ({ ok: false, id: `r${i}`, error: full }));
const stored = (duplicate = false): AppendResult[] => [
  { ok: true, id: "s", seq: 1, acceptedAt: 0, duplicate },
];

describe("StorageRefusals", () => {
  it("warns once when refusals begin, reminds at most once a minute, says info when a message is stored", () => {
    let now = 1_000_000;
    const { log, lines } = logged();
    const r = new StorageRefusals(log, () => now);
    r.note(refusedAll(3));
    r.note(refusedAll(2));
    now += 59_000;
    r.note(refusedAll(1));
    expect(lines.map((l) => [l["level"], l["msg"]])).toEqual([
      ["warn", "the outbox refuses new messages: clients get a retryable error until there is room"],
    ]);
    expect(r.status()).toMatchObject({ code: "STORAGE_FULL", refused: 6, active: true });
    now += 2_000;
    r.note(refusedAll(1));
    expect(lines[1]).toMatchObject({
      level: "warn",
      msg: "the outbox still refuses new messages",
      refused: 7,
    });
    r.note(stored(true)); // a duplicate stores nothing: still refusing
    expect(r.status()?.refused).toBe(7);
    r.note(stored()); // refusals a moment ago: a message squeezed in between (at maxMessages), still refusing
    expect(r.status()?.refused).toBe(7);
    expect(lines).toHaveLength(2);
    now += 2_000;
    r.note(stored());
    expect(lines[2]).toMatchObject({ level: "info", msg: "the outbox accepts messages again", refused: 7 });
    expect(r.status()).toBeUndefined();
    expect(lines).toHaveLength(3);
  });

  it("stays in the status but reads as inactive 30 s after the last refusal (a broker out of rotation)", () => {
    let now = 0;
    const r = new StorageRefusals(logged().log, () => now);
    r.note(refusedAll(1));
    now += 29_000;
    expect(r.status()?.active).toBe(true);
    now += 2_000;
    expect(r.status()).toMatchObject({ active: false, refused: 1 });
  });
});

describe("the status of a broker refusing messages", () => {
  it("herald status shows a REFUSING line, /metrics herald_outbox_refusing 1, /readyz 503", async () => {
    const base = {
      broker: "b",
      version: "0",
      pid: 1,
      startedAt: new Date(0).toISOString(),
      accepting: true,
      endpoints: [],
      outbox: {
        headSeq: 1,
        totalRows: 1,
        pendingMessages: 0,
        pendingBytes: 0,
        oldestPendingAt: undefined,
        sinks: {},
        commits: 1,
        restampedRows: 0,
      },
      sinks: [],
      sources: [],
      memory: { rss: 0, heapUsed: 0, external: 0 },
      submit: {
        requests: 0,
        badRequests: 0,
        messages: 0,
        rejected: 0,
        paused: 0,
        loopsStopped: 0,
        admissionRejected: 0,
        admissionByCode: {},
      },
    };
    const refusing = {
      code: "STORAGE_FULL",
      message: "the outbox /x is out of space: free disk space",
      since: "2026-01-01T00:00:00.000Z",
      lastAt: "2026-01-01T00:00:05.000Z",
      refused: 12,
      active: true,
    };
    const s = { ...base, refusing };
    expect(render(s)).toContain(
      "REFUSING MESSAGES (STORAGE_FULL): 12 messages refused since 2026-01-01T00:00:00.000Z",
    );
    expect(render(base)).not.toContain("REFUSING");
    expect(renderMetrics(s)).toContain("\nherald_outbox_refusing 1\n");
    expect(renderMetrics(base)).toContain("\nherald_outbox_refusing 0\n");
    const [p1, p2] = await freePorts(2);
    const m = await startMetricsServer({ address: `127.0.0.1:${p1}`, broker: { status: () => s } });
    cleanups.push(() => m.close());
    const ready = await http(`${m.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toContain(
      "the outbox refuses new messages since 2026-01-01T00:00:00.000Z (STORAGE_FULL)",
    );
    const stale = { ...base, refusing: { ...refusing, active: false } };
    const m2 = await startMetricsServer({ address: `127.0.0.1:${p2}`, broker: { status: () => stale } });
    cleanups.push(() => m2.close());
    expect((await http(`${m2.url}/readyz`)).status).toBe(200);
  });
});

describe("the clean-close record on a full disk", () => {
  it("writeCleanClose says why it could not write the record", () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-dr2-cc-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "outbox.db");
    Outbox.open({ path, failpoint: "" }).close();
    const db = new Database(path, { readonly: true });
    const record = { head: 0, totalRows: 0, countedFloor: 0, pendingCount: 0, pendingBytes: 0 };
    expect(writeCleanClose(db, record)).toMatch(/^SQLITE_READONLY/);
    db.close();
  });

  it("is logged as a warning by the broker whose outbox it is", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-dr2-cc-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "outbox.db");
    const { log, lines } = logged();
    const broker = new Broker({
      name: "cc",
      submitEndpoints: [],
      outbox: { path, failpoint: "" },
      sinks: [],
      maxBodyBytes: 1 << 20,
      maxBatch: 1000,
      log,
    });
    await broker.start();
    // What the outbox's close meets on a full disk (on a real one, whether the write needs a new block
    // depends on where the WAL stands: see repro-storage-full.sh of the review for the whole story).
    const db = (broker as unknown as { outbox: { db: Database.Database } }).outbox.db;
    const prepare = db.prepare.bind(db);
    db.prepare = ((sql: string) => {
      if (sql.startsWith("INSERT OR REPLACE INTO meta"))
        throw Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
      return prepare(sql);
    }) as typeof db.prepare;
    await broker.stop();
    const warned = lines.filter((l) => String(l["msg"]).startsWith("could not record the clean stop"));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ level: "warn", why: "SQLITE_FULL: database or disk is full" });
  });
});

describe("a broker whose disk fills up (tmpfs)", () => {
  it("logs it once, shows it in status, and says so at info when a message is stored again", {
    timeout: 120_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-dr2-full-"));
    const mnt = join(dir, "mnt");
    mkdirSync(mnt);
    // A real small file system (tests run as root): SQLite sees ENOSPC exactly as on a full disk.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt]);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    cleanups.push(() => void execFileSync("umount", ["-l", mnt]));
    const { log, lines } = logged();
    const broker = new Broker({
      name: "full",
      submitEndpoints: [],
      outbox: { path: join(mnt, "outbox.db"), failpoint: "" },
      sinks: [],
      maxBodyBytes: 1 << 20,
      maxBatch: 1000,
      log,
    });
    cleanups.push(() => broker.stop());
    await broker.start();
    const peer = { routingId: Buffer.alloc(0), endpoint: "test" };
    const batch = (): Message[] =>
      Array.from({ length: 5 }, () => createMessage({ topic: "full.test", body: { pad: "x".repeat(8000) } }));
    const fillDisk = (): void => {
      const { bavail, bsize } = statfsSync(mnt);
      writeFileSync(join(mnt, "filler"), Buffer.alloc(Math.max(0, bavail * bsize - 256 * 1024)));
    };
    const publishUntilFull = async (): Promise<boolean> => {
      for (let i = 0; i < 400; i++) {
        const results = await broker.accept(batch(), peer);
        if (results.some((r) => !r.ok && r.error.code === "STORAGE_FULL")) return true;
      }
      return false;
    };
    fillDisk();
    expect(await publishUntilFull()).toBe(true);
    const warned = lines.filter((l) => l["level"] === "warn" && l["code"] === "STORAGE_FULL");
    expect(warned).toHaveLength(1);
    expect(broker.status().refusing).toMatchObject({ code: "STORAGE_FULL", active: true });
    // Space freed: the next stored message ends the episode, once no refusal came for 2 s.
    rmSync(join(mnt, "filler"));
    await new Promise((r) => setTimeout(r, 2_100));
    const after = await broker.accept(batch(), peer);
    expect(after.every((r) => r.ok)).toBe(true);
    expect(broker.status().refusing).toBeUndefined();
    expect(lines.some((l) => l["msg"] === "the outbox accepts messages again")).toBe(true);
  });
});
