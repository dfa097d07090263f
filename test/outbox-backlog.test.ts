import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { measureFsync, Outbox } from "../src/storage/index.js";
import { ensureDist, runChild } from "./fixtures/outbox-dist.js";
import { tempDir } from "./fixtures/outbox-helpers.js";

beforeAll(() => ensureDist(), 120_000);

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

const MB = 1024 * 1024;

describe("outbox with a large backlog", () => {
  it("opens 100k rows (50k pending) without loading them, and drains from the persisted cursor", async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const path = join(dir, "outbox.db");
    // filled by another process so this one's heap holds none of it
    const fill = runChild(["fill", path, "100000"]);
    expect(await fill.exited).toBe(0);
    expect(fill.lines).toContain("FILLED");

    // load the SQLite addon first (better-sqlite3 loads it lazily) so the baseline excludes its code
    Outbox.open({ path: join(dir, "warmup.db"), failpoint: "" }).close();
    const baseline = process.memoryUsage().rss;
    const t0 = performance.now();
    const box = Outbox.open({ path, failpoint: "" });
    const openMs = performance.now() - t0;
    cleanups.unshift(() => box.close());
    const afterOpen = process.memoryUsage().rss;
    console.log(
      `outbox open with 100k rows: ${openMs.toFixed(1)} ms, RSS +${((afterOpen - baseline) / MB).toFixed(1)} MB`,
    );
    expect(afterOpen - baseline).toBeLessThan(50 * MB);

    const stats = box.stats();
    expect(stats).toMatchObject({ headSeq: 100_000, totalRows: 100_000, pendingMessages: 50_000 });
    expect(stats.sinks).toEqual({ s: { cursor: 50_000, lag: 50_000 } });

    // drain like a dispatcher: page from the persisted cursor, ack as we go
    let cursor = box.registerSink("s");
    expect(cursor).toBe(50_000);
    let seen = 0;
    let peak = afterOpen;
    for (;;) {
      const page = box.read(cursor, 500, 256 * 1024);
      if (page.length === 0) break;
      expect(page[0]?.seq).toBe(cursor + 1);
      seen += page.length;
      cursor = page.at(-1)?.seq ?? cursor;
      box.ack("s", cursor);
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    console.log(`drained 50k: peak RSS +${((peak - baseline) / MB).toFixed(1)} MB over baseline`);
    expect(seen).toBe(50_000);
    expect(peak - baseline).toBeLessThan(50 * MB);
    expect(box.stats()).toMatchObject({ pendingMessages: 0, pendingBytes: 0 });
  });
});

describe("fsync probe", () => {
  it("reports p50 <= p99, both positive", () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const t = measureFsync(dir, 20);
    console.log(`fsync on ${dir}: p50 ${t.p50Us} us, p99 ${t.p99Us} us`);
    expect(t.p50Us).toBeGreaterThan(0);
    expect(t.p99Us).toBeGreaterThanOrEqual(t.p50Us);
  });
});
