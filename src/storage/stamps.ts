import type { Statements } from "./statements.js";

/**
 * accepted_at is kept non-decreasing in seq (pruning by age walks from the oldest row and stops at the
 * first young one), so a clock stepped back a little is carried forward. A clock that went back further
 * would carry a future stamp onto every new row, and nothing would age until real time caught up (the
 * outbox would grow to OUTBOX_FULL): the rows stamped ahead are restamped with the current time instead.
 */
export const CLOCK_CARRY_MS = 5_000;

/**
 * Restamp the rows stamped after `now` with `now`. They are a suffix of the table (stamps are
 * non-decreasing), found by binary search on seq, so the order holds afterwards. Returns the row count.
 */
export function restampAhead(sql: Statements, head: number, now: number): number {
  let lo = sql.minSeq.get()?.s ?? head + 1;
  let hi = head + 1;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const row = sql.stampAt.get(mid);
    if (row === undefined || row.accepted_at > now) hi = mid;
    else lo = row.seq + 1;
  }
  return sql.restampFrom.run(now, lo).changes;
}
