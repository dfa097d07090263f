import type { WriteFn } from "./cursors.js";
import type { Agg, Statements } from "./statements.js";

/** Rows deleted per transaction: one prune never holds the write lock for long. */
const PRUNE_CHUNK = 10_000;

/**
 * Delete the rows with seq <= upTo, oldest first, in chunks. `committed` hears of each chunk once its
 * delete committed (a failed COMMIT leaves the rows, and whatever counts them, as they were), with the
 * last seq, the rows deleted and their count and bytes. Returns the rows deleted.
 */
export function deleteThrough(
  sql: Statements,
  write: WriteFn,
  head: number,
  upTo: number,
  committed: (end: number, n: number, agg: Agg) => void,
): number {
  let deleted = 0;
  for (;;) {
    const low = sql.minSeq.get()?.s;
    if (low === null || low === undefined || low > upTo) return deleted;
    const end = Math.min(upTo, low + PRUNE_CHUNK - 1);
    let agg: Agg = { n: 0, b: 0 };
    let n = 0;
    write("pruning delivered messages", () => {
      agg = sql.aggRange.get(0, end) ?? agg;
      // The rows about to go may hold the highest seq: keep it in meta so seqs are never reused.
      sql.setHead.run(String(head));
      n = sql.deleteUpTo.run(end).changes;
    });
    deleted += n;
    committed(end, n, agg);
  }
}
