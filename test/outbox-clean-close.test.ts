import { statSync } from "node:fs";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import type { Outbox } from "../src/storage/index.js";
import { damage, forgetCleanClose, msgs, outboxFile, thrownBy } from "./fixtures/outbox-helpers.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

const setup = () => outboxFile((fn) => cleanups.push(fn));

/** The counters a clean close vouches for. */
function counters(box: Outbox): Record<string, unknown> {
  const { headSeq, totalRows, pendingMessages, pendingBytes, sinks } = box.stats();
  return { headSeq, totalRows, pendingMessages, pendingBytes, sinks };
}

/** 600 messages, a sink that took the first 250 of them. */
function fill(open: () => Outbox): Record<string, unknown> {
  const box = open();
  box.registerSink("s");
  for (let i = 0; i < 12; i++) box.appendSync(msgs(50, i * 50, 300));
  box.ack("s", 250);
  const before = counters(box);
  box.close();
  return before;
}

/** Rows of the clean-close record in the open file (on the box's own connection: the file is held). */
function records(box: Outbox): number {
  const db = (box as unknown as { db: Database.Database }).db;
  return (db.prepare("SELECT count(*) AS n FROM meta WHERE key = 'clean_close'").get() as { n: number }).n;
}

describe("clean close", () => {
  it("lets the next open skip the checks and scans with the same counters a full recount gives", () => {
    const { path, open } = setup();
    const before = fill(open);
    expect(before).toMatchObject({ headSeq: 600, totalRows: 600, pendingMessages: 350 });
    const trusted = open();
    expect(trusted.openedAfterCleanClose).toBe(true);
    expect(records(trusted)).toBe(0); // consumed: a crash from here on leaves no record
    expect(counters(trusted)).toEqual(before);
    trusted.close();
    forgetCleanClose(path);
    const recounted = open();
    expect(recounted.openedAfterCleanClose).toBe(false);
    expect(counters(recounted)).toEqual(before);
  });

  it("keeps counting from the saved counters: appends, acks and a dropped sink after the reopen", () => {
    const { path, open } = setup();
    fill(open);
    const box = open();
    box.registerSink("t"); // a new sink starts at the head: pending is unchanged
    box.appendSync(msgs(10, 1000, 300));
    box.ack("s", 400);
    box.unregisterSink("t");
    const after = counters(box);
    box.close();
    forgetCleanClose(path);
    expect(counters(open())).toEqual(after);
  });

  it("a record that does not match the file is ignored: the open checks and recounts", () => {
    const { path, open } = setup();
    const before = fill(open);
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = json_set(value, '$.head', 9999) WHERE key = 'clean_close'").run();
    db.close();
    const box = open();
    expect(box.openedAfterCleanClose).toBe(false);
    expect(counters(box)).toEqual(before);
  });

  it("damage after a clean close is found on read; that run does not vouch, so the next open quarantines", () => {
    const { path, open } = setup();
    fill(open);
    damage(path, Math.floor(statSync(path).size / 4096 / 2) * 4096, 4096);
    const box = open();
    expect(box.openedAfterCleanClose).toBe(true);
    expect(() => {
      for (let after = 0; ; ) {
        const page = box.read(after, 100);
        if (page.length === 0) return;
        after = page.at(-1)?.seq ?? after;
      }
    }).toThrow(/malformed|damaged|corrupt/i);
    // Fail-stop: nothing more is acknowledged into a file the next open moves aside.
    expect(box.failed?.code).toBe("STORAGE_ERROR");
    const [r] = box.appendSync(msgs(1, 10_000, 10));
    expect(r?.ok === false && r.error.code).toBe("STORAGE_ERROR");
    box.close();
    const thrown = thrownBy(open);
    expect(thrown?.code).toBe("STORAGE_ERROR");
    expect(thrown?.message).toMatch(/is damaged .* moved aside to .*\.corrupt-/);
  });
});
