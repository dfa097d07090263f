import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { Outbox } from "../src/storage/index.js";
import { acked, type ChildRun, ensureDist, runChild } from "./fixtures/outbox-dist.js";
import { tempDir } from "./fixtures/outbox-helpers.js";

beforeAll(() => ensureDist(), 120_000);

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function setup(): string {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  return join(dir, "outbox.db");
}

function start(args: string[], env: Record<string, string> = {}): ChildRun {
  const run = runChild(args, env);
  cleanups.unshift(() => run.kill());
  return run;
}

/** Every row in the outbox as seq -> id, read page by page. */
function contents(box: Outbox): Map<number, string> {
  const out = new Map<number, string>();
  for (let after = 0; ; ) {
    const page = box.read(after, 1000);
    if (page.length === 0) return out;
    for (const s of page) out.set(s.seq, s.message.id);
    after = page.at(-1)?.seq ?? after;
  }
}

describe("outbox crash safety (child process)", () => {
  it("kill -9 mid-burst: every acknowledged append is present after reopen; cursors never run ahead", async () => {
    const path = setup();
    const run = start(["loop", path]);
    await run.waitFor("ACK ", 400);
    run.kill();
    expect(await run.exited).toBe("SIGKILL");
    const acks = acked(run.lines);
    expect(acks.length).toBeGreaterThanOrEqual(400);
    const box = Outbox.open({ path, failpoint: "" });
    cleanups.unshift(() => box.close());
    // The killed run left no clean-close record: this open checked every page and recounted the rows.
    expect(box.openedAfterCleanClose).toBe(false);
    const rows = contents(box);
    const lost = acks.filter((a) => rows.get(a.seq) !== a.id);
    expect(lost).toEqual([]);
    const stats = box.stats();
    expect(stats.totalRows).toBeGreaterThanOrEqual(acks.length);
    expect(stats.totalRows).toBe(rows.size);
    const cursor = stats.sinks["s"]?.cursor ?? -1;
    expect(cursor).toBeGreaterThanOrEqual(0);
    expect(cursor).toBeLessThanOrEqual(stats.headSeq);
    expect(rows.has(cursor) || cursor === 0).toBe(true);
  });

  it("outbox.after_commit=exit@K: commit K is stored though never acknowledged, nothing acked is lost", async () => {
    const path = setup();
    const K = 7;
    const run = start(["loop", path], { HERALD_FAILPOINTS: `outbox.after_commit=exit@${K}` });
    expect(await run.exited).toBe(137);
    const acks = acked(run.lines);
    // each loop turn is one group commit of 4 x 5 messages; commit K died before replying
    expect(acks).toHaveLength((K - 1) * 20);
    const box = Outbox.open({ path, failpoint: "" });
    cleanups.unshift(() => box.close());
    const rows = contents(box);
    expect(acks.filter((a) => rows.get(a.seq) !== a.id)).toEqual([]);
    expect(rows.size).toBe(K * 20);
  });

  it("outbox.before_commit=exit: the message is absent after reopen and a retry is accepted once", async () => {
    const path = setup();
    const id = "crash-before-commit-1";
    const crashed = start(["one", path, id], { HERALD_FAILPOINTS: "outbox.before_commit=exit" });
    expect(await crashed.exited).toBe(137);
    expect(acked(crashed.lines)).toEqual([]);
    const check = Outbox.open({ path, failpoint: "" });
    expect(check.stats()).toMatchObject({ totalRows: 0, headSeq: 0 });
    check.close();
    const retry = start(["one", path, id]);
    expect(await retry.exited).toBe(0);
    expect(acked(retry.lines)).toEqual([{ seq: 1, id }]);
    const again = start(["one", path, id]);
    expect(await again.exited).toBe(0);
    expect(acked(again.lines)).toEqual([{ seq: 1, id }]); // the duplicate reports the original seq
    const box = Outbox.open({ path, failpoint: "" });
    cleanups.unshift(() => box.close());
    expect(box.stats().totalRows).toBe(1);
  });
});
