/**
 * Storage review fixes: the outbox clock (wall-clock steps neither expire nor extend dedup windows), reads
 * that load only what they return, undecodable rows, TOO_LARGE, typed open errors, cursors saved before a
 * prune.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Outbox } from "../src/storage/index.js";
import { createMessage } from "../src/wire/message.js";
import { msg, msgs, okSeq, outboxFile, thrownBy } from "./fixtures/outbox-helpers.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const c of cleanups.splice(0).reverse()) c();
});

const file = (): ReturnType<typeof outboxFile> => outboxFile((fn) => cleanups.push(fn));
const HOUR = 3_600_000;

/** Date.now() runs `skew` ms ahead of the real wall clock (performance.now(), the monotonic clock, does not). */
function skewWallClock(): { set: (ms: number) => void } {
  const real = Date.now.bind(Date);
  let skew = 0;
  vi.spyOn(Date, "now").mockImplementation(() => real() + skew);
  return {
    set: (ms) => {
      skew = ms;
    },
  };
}

/** The outbox's private statements, for counting what a read loads. */
function statements(box: Outbox): Record<string, unknown> {
  return (box as unknown as { sql: Record<string, unknown> }).sql;
}

describe("outbox clock: a wall-clock step neither expires nor extends dedup windows (matrix E7)", () => {
  it("a forward step does not let the prune delete a row inside its window", () => {
    const wall = skewWallClock();
    const box = file().open();
    box.registerSink("amqp");
    const m = msg(1);
    const first = okSeq(box.appendSync([m])[0]);
    box.ack("amqp", first);
    wall.set(HOUR); // NTP or a VM resume steps the wall clock forward...
    expect(box.prune()).toBe(0); // ...and the background prune runs
    wall.set(0);
    // The client's retry, a second later: still a duplicate.
    expect(box.appendSync([{ ...m }])[0]).toMatchObject({ ok: true, duplicate: true, seq: first });
  });

  it("a restart after a forward step goes on with the same time line (the offset is saved)", () => {
    const wall = skewWallClock();
    const f = file();
    const box = f.open();
    const m = msg(1);
    const first = okSeq(box.appendSync([m])[0]);
    wall.set(HOUR);
    box.prune(); // the 30 s timer: saves how far the outbox clock runs behind the wall clock
    box.close({ clean: false }); // as a crash leaves it
    const again = f.open();
    // Started from the wall clock alone, the row would be an hour old: pruned, and the retry stored again.
    expect(again.prune()).toBe(0);
    expect(again.appendSync([{ ...m }])[0]).toMatchObject({ ok: true, duplicate: true, seq: first });
    const late = again.appendSync([msg(2)])[0];
    expect(late?.ok && late.acceptedAt).toBeLessThan(Date.now() - HOUR / 2);
  });

  it("catches up with the wall clock once no row is inside its window any more", () => {
    const wall = skewWallClock();
    const box = file().open({ retentionMs: 1000, dedupWindowMs: 1000 });
    const a = box.appendSync([msg(1)])[0];
    wall.set(HOUR);
    const b = box.appendSync([msg(2)])[0];
    // Stamped by the monotonic clock, not an hour on.
    expect(b?.ok && a?.ok && b.acceptedAt - a.acceptedAt).toBeLessThan(HOUR / 2);
    const mono = performance.now.bind(performance);
    vi.spyOn(performance, "now").mockImplementation(() => mono() + 2000);
    expect(box.prune()).toBe(2); // both rows past their 1 s window: nothing left to shorten
    const c = box.appendSync([msg(3)])[0];
    expect(c?.ok && c.acceptedAt).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe("outbox reads load only what they return", () => {
  it("a page of large messages stops loading rows at the byte cap", () => {
    const box = file().open();
    const body = { pad: "x".repeat(300 * 1024) }; // three fit under the 1 MiB cap
    for (let i = 0; i < 40; i++) box.appendSync([createMessage({ topic: "org.test.big", body })]);
    (box as unknown as { recent: { clear(): void } }).recent.clear(); // a backlog drain reads from disk
    const sql = statements(box);
    const page = sql["page"] as {
      all: (...a: unknown[]) => unknown[];
      iterate: (...a: unknown[]) => Iterable<unknown>;
    };
    let loaded = 0;
    sql["page"] = {
      all: (...a: unknown[]) => {
        const rows = page.all(...a);
        loaded += rows.length;
        return rows;
      },
      *iterate(...a: unknown[]) {
        for (const row of page.iterate(...a)) {
          loaded++;
          yield row;
        }
      },
    };
    const rows = box.read(0, 500, 1 << 20);
    expect(rows).toHaveLength(3);
    expect(loaded).toBeLessThanOrEqual(rows.length + 1);
  });
});

describe("outbox: undecodable rows", () => {
  function damageRow(path: string, box: Outbox, seq: number): void {
    box.close({ clean: false });
    const db = new Database(path);
    db.prepare("UPDATE messages SET envelope = X'00ff' WHERE seq = ?").run(seq);
    db.close();
  }

  it("a read returns the rows before a damaged one, then throws STORAGE_ERROR naming its seq", () => {
    const f = file();
    const box = f.open();
    box.appendSync(msgs(4));
    damageRow(f.path, box, 3);
    const again = f.open();
    expect(again.read(0, 10).map((r) => r.seq)).toEqual([1, 2]);
    const err = thrownBy(() => again.read(2, 10));
    expect(err?.code).toBe("STORAGE_ERROR");
    expect(err?.details).toMatchObject({ seq: 3, undecodable: true });
    expect(again.read(3, 10).map((r) => r.seq)).toEqual([4]);
  });
});

describe("outbox limits", () => {
  it("a message bigger than maxBytes gets TOO_LARGE (not retryable) even in an empty outbox", () => {
    const box = file().open({ maxBytes: 64 * 1024 });
    box.registerSink("amqp");
    const big = createMessage({ topic: "org.test.big", body: { pad: "x".repeat(100_000) } });
    const [r] = box.appendSync([big]);
    expect(r?.ok).toBe(false);
    if (r?.ok !== false) return;
    expect(r.error).toMatchObject({ code: "TOO_LARGE", retryable: false });
    expect(r.error.message).toContain("outbox.maxBytes");
    // One that fits alone but not beside the backlog is still OUTBOX_FULL, retryable.
    const half = createMessage({ topic: "org.test.half", body: { pad: "x".repeat(40_000) } });
    okSeq(box.appendSync([half])[0]);
    const [full] = box.appendSync([{ ...half, id: `${half.id}-2` }]);
    expect(full?.ok === false && full.error).toMatchObject({ code: "OUTBOX_FULL", retryable: true });
  });
});

describe("outbox open: typed errors", () => {
  it("a directory that cannot be created is STORAGE_ERROR, not a raw fs error", () => {
    const f = file();
    writeFileSync(join(f.dir, "notadir"), "x");
    const err = thrownBy(() => f.open({ path: join(f.dir, "notadir", "outbox.db") }));
    expect(err?.code).toBe("STORAGE_ERROR");
    expect(err?.message).toContain("EEXIST");
  });
});

describe("outbox prune and cursors", () => {
  it("writes the cursors before deleting what they passed, so none is left before rows that are gone", () => {
    const f = file();
    const box = f.open({ retentionMs: 0, dedupWindowMs: 0 });
    box.registerSink("s");
    box.appendSync(msgs(3));
    box.ack("s", 1);
    box.flushCursors();
    box.ack("s", 3); // in memory; the timer would write it within 100 ms
    expect(box.prune(Date.now() + 1000)).toBe(3);
    const db = (box as unknown as { db: Database.Database }).db;
    expect(db.prepare("SELECT seq FROM cursors WHERE sink = 's'").get()).toEqual({ seq: 3 });
  });

  it("says where the stored rows start", () => {
    const box = file().open({ retentionMs: 0, dedupWindowMs: 0 });
    expect([box.firstSeq(), box.headSeq]).toEqual([1, 0]);
    box.appendSync(msgs(3));
    expect([box.firstSeq(), box.headSeq]).toEqual([1, 3]);
    box.prune(Date.now() + 1000);
    expect([box.firstSeq(), box.headSeq]).toEqual([4, 3]);
  });
});
