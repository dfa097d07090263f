import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { Outbox } from "../src/storage/outbox.js";
import { RecentMessages } from "../src/storage/recent.js";
import { createMessage } from "../src/wire/message.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("outbox read cache", () => {
  it("serves live reads from memory exactly as the disk would", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-recent-"));
    dirs.push(dir);
    const path = join(dir, "o.db");
    const ob = Outbox.open({ path, failpoint: "" });
    const msgs = Array.from({ length: 300 }, (_, i) => ({
      ...createMessage({ topic: "r.t", body: { i } }),
      seq: 9,
      stream: "x",
    }));
    await ob.append(msgs.slice(0, 100));
    await ob.append(msgs.slice(100));
    const fromCache = ob.read(50, 1000);
    ob.close();
    const again = Outbox.open({ path, failpoint: "" });
    const fromDisk = again.read(50, 1000);
    again.close();
    expect(fromCache.map((r) => r.seq)).toEqual(fromDisk.map((r) => r.seq));
    expect(fromCache.map((r) => r.message)).toEqual(fromDisk.map((r) => r.message));
    expect(fromCache[0]!.message.seq).toBeUndefined();
  });

  it("keeps a bounded, contiguous window and forgets pruned rows", () => {
    const row = (seq: number) => ({
      seq,
      acceptedAt: 0,
      bytes: 10,
      message: createMessage({ topic: "a.b", body: {} }),
    });
    const r = new RecentMessages(5, 1000);
    r.add([1, 2, 3, 4, 5, 6, 7].map(row));
    expect(r.read(0, 10, 1e9)).toBeUndefined(); // 1 and 2 fell out: go to disk
    expect(r.read(2, 10, 1e9)!.map((x) => x.seq)).toEqual([3, 4, 5, 6, 7]);
    expect(r.read(7, 10, 1e9)).toEqual([]);
    expect(r.read(3, 2, 1e9)!.map((x) => x.seq)).toEqual([4, 5]);
    expect(r.read(3, 10, 25)!.map((x) => x.seq)).toEqual([4, 5]);
    r.dropThrough(4);
    expect(r.read(3, 10, 1e9)).toBeUndefined();
    expect(r.read(4, 10, 1e9)!.map((x) => x.seq)).toEqual([5, 6, 7]);
    r.add([9].map(row)); // not contiguous: start afresh
    expect(r.read(7, 10, 1e9)).toBeUndefined();
    expect(r.read(8, 10, 1e9)!.map((x) => x.seq)).toEqual([9]);
  });

  it("answers reads like a plain list of the newest rows through many adds, drops and compactions (model)", () => {
    const msg = createMessage({ topic: "a.b", body: {} });
    const step = fc.oneof(
      fc.record({ add: fc.integer({ min: 1, max: 700 }) }),
      fc.record({ drop: fc.integer({ min: 0, max: 1500 }) }),
      fc.record({ read: fc.integer({ min: 0, max: 3000 }), limit: fc.integer({ min: 1, max: 5000 }) }),
      // Around the oldest row held, where an off-by-one would show.
      fc.record({ edge: fc.integer({ min: -3, max: 3 }) }),
    );
    fc.assert(
      // Long runs with a small window: compaction happens once 1,024 rows were dropped.
      fc.property(fc.array(step, { minLength: 30, maxLength: 80 }), (steps) => {
        const r = new RecentMessages(500, 1e12);
        let model: number[] = [];
        let head = 0;
        for (const s of steps) {
          if ("add" in s) {
            const rows = Array.from({ length: s.add }, () => ++head);
            r.add(rows.map((seq) => ({ seq, acceptedAt: 0, bytes: 1, message: msg })));
            model = [...model, ...rows].slice(-500);
          } else if ("drop" in s) {
            const through = head - s.drop;
            r.dropThrough(through);
            model = model.filter((seq) => seq > through);
          } else {
            const after = "edge" in s ? (model[0] ?? head) - 1 + s.edge : head - s.read;
            const limit = "edge" in s ? 3 : s.limit;
            const got = r.read(after, limit, 1e12)?.map((x) => x.seq);
            const held = model.length > 0 && after + 1 >= model[0]!;
            expect(got).toEqual(held ? model.filter((seq) => seq > after).slice(0, limit) : undefined);
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
