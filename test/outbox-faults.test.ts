import { existsSync, readdirSync, statSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { HeraldError } from "../src/errors.js";
import { FailpointError, Failpoints, type Outbox } from "../src/storage/index.js";
import {
  damage,
  errCode,
  forgetCleanClose,
  msg,
  msgs,
  okSeq,
  outboxFile,
  thrownBy,
} from "./fixtures/outbox-helpers.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

const setup = () => outboxFile((fn) => cleanups.push(fn));

describe("disk full (SQLITE_FULL via max_page_count)", () => {
  it("rolls back the whole batch with STORAGE_FULL, stays up, and accepts again once space is freed", () => {
    const { open } = setup();
    const box = open({ maxPageCount: 24, retentionMs: 0, dedupWindowMs: 0 });
    box.registerSink("s");
    let stored = 0;
    let failedBatch: ReturnType<Outbox["appendSync"]> | undefined;
    let batch = msgs(5, 0, 1000);
    for (let i = 0; i < 200 && failedBatch === undefined; i++) {
      batch = msgs(5, i * 5, 1000);
      const r = box.appendSync(batch);
      if (r.every((x) => x.ok)) stored += 5;
      else failedBatch = r;
    }
    expect(failedBatch).toBeDefined();
    expect(stored).toBeGreaterThan(0);
    for (const r of failedBatch ?? []) {
      expect(errCode(r)).toBe("STORAGE_FULL");
      expect(r.ok ? false : r.error.retryable).toBe(true);
      expect(r.ok ? "" : r.error.message).toMatch(/free disk space/);
    }
    expect(box.failed).toBeUndefined();
    expect(box.stats()).toMatchObject({ totalRows: stored, headSeq: stored, pendingMessages: stored });
    expect(box.read(0, 10_000)).toHaveLength(stored); // nothing half-stored
    // free space by delivering and pruning; the very batch that failed is then accepted as new
    box.ack("s", stored);
    expect(box.prune(Date.now() + 1)).toBe(stored);
    const retry = box.appendSync(batch);
    expect(retry.map((x) => x.ok && !x.duplicate)).toEqual([true, true, true, true, true]);
    expect(retry.map(okSeq)).toEqual([1, 2, 3, 4, 5].map((n) => stored + n));
    box.close();
  });

  it("raising max_page_count (reopen) makes room; quick_check passes afterwards", () => {
    const { open } = setup();
    const small = open({ maxPageCount: 20 });
    let full = false;
    let acked = 0;
    for (let i = 0; i < 200 && !full; i++) {
      const r = small.appendSync(msgs(4, i * 4, 1000));
      full = r.some((x) => errCode(x) === "STORAGE_FULL");
      acked += r.filter((x) => x.ok).length;
    }
    expect(full).toBe(true);
    small.close();
    const big = open({ maxPageCount: 10_000 }); // open runs quick_check: the file is intact
    expect(big.stats().totalRows).toBe(acked);
    expect(big.appendSync(msgs(4, 10_000, 1000)).every((x) => x.ok)).toBe(true);
  });
});

describe("fail-stop on I/O errors", () => {
  it("an injected commit error rolls back, fails every later append, and calls onFail once", async () => {
    const { open } = setup();
    const box = open({ failpoint: "outbox.before_commit=error@2" });
    const seen: HeraldError[] = [];
    box.onFail((e) => seen.push(e));
    okSeq(box.appendSync([msg(1)])[0]);
    const [bad] = await box.append([msg(2)]);
    expect(errCode(bad)).toBe("STORAGE_ERROR");
    const message = bad?.ok ? "" : (bad?.error.message ?? "");
    expect(message).toMatch(/EIO/);
    expect(message).toMatch(/restart herald serve; the outbox recovers from its WAL/);
    expect(box.failed?.code).toBe("STORAGE_ERROR");
    expect(seen).toHaveLength(1);
    // no later ack, even though the failpoint would not fire again
    expect(errCode(box.appendSync([msg(3)])[0])).toBe("STORAGE_ERROR");
    expect(box.stats().failed).toMatch(/EIO/);
    let late: HeraldError | undefined;
    box.onFail((e) => {
      late = e;
    });
    expect(late).toBe(box.failed);
    box.close();
    const again = open();
    expect(again.failed).toBeUndefined();
    expect(again.read(0, 10).map((s) => s.message.body["n"])).toEqual([1]);
    okSeq(again.appendSync([msg(2)])[0]);
  });

  it("an error after commit keeps the committed batch acknowledged but stops accepting", () => {
    const { open } = setup();
    const box = open({ failpoint: "outbox.after_commit=error" });
    expect(box.appendSync([msg(1)])[0]).toMatchObject({ ok: true, seq: 1 });
    expect(box.failed).toBeDefined();
    expect(errCode(box.appendSync([msg(2)])[0])).toBe("STORAGE_ERROR");
  });
});

describe("group commit order", () => {
  it("answers the appends of a commit before it wakes the sinks", async () => {
    const { open } = setup();
    const box = open();
    box.registerSink("s");
    let woke = false;
    const waiting = box.waitForAppend(0).then(() => {
      woke = true;
    });
    okSeq((await box.append([msg(1)]))[0]);
    expect(woke).toBe(false); // the replies go out first
    expect(box.read(0, 10).map((s) => s.seq)).toEqual([1]); // committed: a sink polling would see it
    await waiting;
    expect(woke).toBe(true);
  });
});

describe("damaged outbox files", () => {
  function fill(open: () => Outbox, path: string): void {
    const box = open();
    for (let i = 0; i < 10; i++) box.appendSync(msgs(50, i * 50, 300));
    box.close(); // checkpoints the WAL into the main file
    forgetCleanClose(path); // as a crash would leave it: the next open checks every page
  }

  it.each([
    ["the file header", () => 0, 100],
    ["a b-tree page in the middle", (size: number) => Math.floor(size / 4096 / 2) * 4096, 4096],
  ])("%s: quarantines the file and throws STORAGE_ERROR; never starts empty over it", (_what, at, len) => {
    const { dir, path, open } = setup();
    fill(open, path);
    damage(path, at(statSync(path).size), len);
    const thrown = thrownBy(open);
    expect(thrown?.code).toBe("STORAGE_ERROR");
    expect(thrown?.message).toMatch(/is damaged .* moved aside to .*\.corrupt-/);
    const moved = thrown?.details["quarantined"];
    expect(typeof moved === "string" && existsSync(moved)).toBe(true);
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(dir).some((f) => f.startsWith("outbox.db.corrupt-"))).toBe(true);
    // the next start is a deliberate, visible fresh start
    expect(open().stats().totalRows).toBe(0);
  });
});

describe("failpoints", () => {
  it("parses name=action[@N] and fires on the right hit", () => {
    const fp = new Failpoints(" a=error@2 , b=sleep:1,c=error");
    expect(fp.empty).toBe(false);
    fp.hit("a");
    expect(() => fp.hit("a")).toThrow(FailpointError);
    fp.hit("a");
    fp.hit("b");
    fp.hit("unknown");
    expect(() => fp.hit("c")).toThrow(/injected I\/O error at failpoint 'c'/);
    expect(new Failpoints("").empty).toBe(true);
    expect(new Failpoints(undefined).empty).toBe(true);
  });

  it.each(["nope", "a=explode", "a=exit@0", "=exit", "a=sleep:x"])("rejects bad spec %s", (spec) => {
    expect(() => new Failpoints(spec)).toThrow(/HERALD_FAILPOINTS item/);
  });
});
