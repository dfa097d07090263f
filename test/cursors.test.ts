import { describe, expect, it } from "vitest";
import { SinkCursors } from "../src/storage/cursors.js";
import type { Statements } from "../src/storage/statements.js";
import { waitFor } from "./helpers/broker.js";

describe("SinkCursors", () => {
  it("retries a failed cursor write on its own, with no further ack to trigger it", async () => {
    const saved: Array<[string, number]> = [];
    const sql = {
      cursors: { all: () => [{ sink: "s", seq: 0 }] },
      saveCursor: { run: (sink: string, seq: number) => saved.push([sink, seq]) },
    } as unknown as Statements;
    let failures = 2; // out of space twice, then room again
    const write = (_during: string, fn: () => unknown): void => {
      if (failures-- > 0) throw new Error("SQLITE_FULL: database or disk is full");
      fn();
    };
    const cursors = new SinkCursors(sql, write, () => true);
    cursors.advance("s", 7, 10); // the sink's last ack: it goes idle after this
    expect(await waitFor(() => saved.length > 0, 2000)).toBe(true);
    expect(saved).toEqual([["s", 7]]);
    cursors.stop();
  });
});
