import { describe, expect, it } from "vitest";
import { SinkCursors } from "../src/storage/cursors.js";
import type { Statements } from "../src/storage/statements.js";
import { waitFor } from "./helpers/broker.js";

describe("SinkCursors", () => {
  it("retries a failed cursor write on its own, with no further ack to trigger it", async () => {
    const saved: Array<[string, number]> = [];
    const sql = {
      cursors: { all: () => [{ sink: "s", seq: 0 }] },
      sinkStates: { all: () => [] },
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

  it("writes a sink's state with its cursor, and a state alone when the cursor stays (a held-back sink)", async () => {
    const saved: string[] = [];
    const sql = {
      cursors: { all: () => [{ sink: "s", seq: 0 }] },
      sinkStates: { all: () => [{ key: "sink_state:s", value: "old" }] },
      saveCursor: { run: (sink: string, seq: number) => saved.push(`${sink}@${seq}`) },
      saveSinkState: { run: (key: string, value: string) => saved.push(`${key}=${value}`) },
    } as unknown as Statements;
    const cursors = new SinkCursors(
      sql,
      (_d, fn) => fn(),
      () => true,
    );
    expect(cursors.state("s")).toBe("old");
    cursors.advance("s", 5, 10, "a");
    cursors.flush();
    expect(saved).toEqual(["s@5", "sink_state:s=a"]);
    cursors.advance("s", 5, 10, "b"); // the cursor stays: the state still changes
    cursors.advance("s", 5, 10, "b");
    cursors.flush();
    expect(saved.slice(2)).toEqual(["sink_state:s=b"]);
    cursors.stop();
  });
});
