import type { WriteFn } from "./cursors.js";
import type { Statements } from "./statements.js";

/**
 * accepted_at is kept non-decreasing in seq (pruning by age walks from the oldest row and stops at the
 * first young one), so a clock stepped back a little is carried forward. A clock that went back further
 * would carry a future stamp onto every new row, and nothing would age until real time caught up (the
 * outbox would grow to OUTBOX_FULL): the rows stamped ahead are restamped with the current time instead.
 */
export const CLOCK_CARRY_MS = 5_000;

/** The meta key holding how far the stamp clock ran behind the wall clock when last saved. */
const OFFSET_KEY = "clock_behind_ms";
/**
 * Closer to the wall clock than this, the stamp clock follows it: rounding and NTP slewing keep the two a
 * few ms apart, and a step this small shortens no window by much. A smaller offset is not saved either.
 */
const SLACK_MS = 1_000;

export interface RestampEvent {
  aheadMs: number;
  rows: number;
}

/**
 * The time stamps and prune cutoffs are taken from: the wall clock at open, advanced by the monotonic
 * clock. A wall clock stepped forward (NTP correction, VM resume) therefore neither expires dedup windows
 * early nor ages rows (reliability matrix E7). It never runs ahead of the wall clock: stamps are reported
 * as accepted_at and read by the next run, which starts from the wall clock. So a wall clock stepped back
 * pulls it back too, and the carry/restamp rule above applies, as it does to a clock set back between runs.
 * Within SLACK_MS of the wall clock it follows the wall clock, so that without steps the two are equal.
 */
export class StampClock {
  private base = 0;
  private since = 0;

  constructor(start: number) {
    this.anchor(start);
  }

  private anchor(at: number): void {
    this.base = at;
    this.since = performance.now();
  }

  now(): number {
    const wall = Date.now();
    const t = this.base + Math.floor(performance.now() - this.since);
    if (t <= wall - SLACK_MS) return t; // the wall clock stepped forward: not followed
    if (t !== wall) this.anchor(wall);
    return wall;
  }

  /** How far behind the wall clock it runs (the forward steps it did not follow). */
  behind(): number {
    return Math.max(0, Date.now() - this.now());
  }

  /** Jump to the wall clock: only safe when no row is inside its window any more (none can expire early). */
  catchUp(): void {
    this.anchor(Date.now());
  }
}

type Txn = { last: number; restamp: RestampEvent | undefined; offset: number | undefined };

/**
 * The outbox's stamps: the clock above, the newest stamp, restamps. The clock's offset from the wall clock
 * is saved (rarely: it only moves when the wall clock steps), so that a restart after a forward step goes
 * on with the same time line instead of ageing every row by the step at once.
 */
export class Stamps {
  private readonly clock: StampClock;
  /** accepted_at of the newest row: new rows never get an older one. */
  private last: number;
  /** The offset on disk. */
  private saved: number;
  private txn: Txn | undefined;
  /** Rows restamped since open. */
  restampedRows = 0;

  constructor(
    private readonly sql: Statements,
    last: number,
    private readonly keepMs: number,
  ) {
    this.last = last;
    const stored = Number(sql.getMeta.get(OFFSET_KEY)?.value ?? 0);
    this.saved = Number.isSafeInteger(stored) && stored > 0 ? stored : 0;
    // Time does not go back across a restart: never start before the newest stamp (unless the wall clock
    // is there; then the restamp rule applies). A saved offset from a wall clock that was set right while
    // herald was down would otherwise age every row backwards.
    const wall = Date.now();
    this.clock = new StampClock(Math.max(wall - this.saved, Math.min(last, wall)));
    this.catchUpIfIdle(this.clock.now());
  }

  now(): number {
    return this.clock.now();
  }

  /**
   * Inside the append transaction, before the inserts: the stamp for the batch's new rows. Restamps the
   * rows stamped ahead of the clock and saves a moved offset: both roll back with the transaction.
   */
  begin(head: number): number {
    const now = this.clock.now();
    const txn: Txn = { last: this.last, restamp: undefined, offset: this.writeOffset() };
    if (this.last > now + CLOCK_CARRY_MS) {
      txn.restamp = { aheadMs: this.last - now, rows: restampAhead(this.sql, head, now) };
      txn.last = now;
    }
    this.txn = txn;
    return Math.max(now, txn.last);
  }

  /** The transaction committed (`stamp`: it inserted rows with it). Returns its restamp, if it made one. */
  commit(stamp: number | undefined): RestampEvent | undefined {
    const txn = this.txn;
    this.txn = undefined;
    if (txn === undefined) return undefined;
    this.last = stamp ?? txn.last;
    if (txn.offset !== undefined) this.saved = txn.offset;
    if (txn.restamp !== undefined) this.restampedRows += txn.restamp.rows;
    return txn.restamp;
  }

  rollback(): void {
    this.txn = undefined;
  }

  /** Before a prune: catch up with the wall clock when that can shorten no window; save a moved offset. */
  maintain(write: WriteFn): void {
    this.catchUpIfIdle(this.clock.now());
    if (Math.abs(this.clock.behind() - this.saved) < SLACK_MS) return;
    let value: number | undefined;
    write("saving the outbox clock offset", () => {
      value = this.writeOffset();
    });
    if (value !== undefined) this.saved = value;
  }

  private writeOffset(): number | undefined {
    const behind = this.clock.behind();
    if (Math.abs(behind - this.saved) < SLACK_MS) return undefined;
    this.sql.setMeta.run(OFFSET_KEY, String(behind));
    return behind;
  }

  private catchUpIfIdle(now: number): void {
    if (this.last + this.keepMs <= now) this.clock.catchUp();
  }
}

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
