import type { CleanClose } from "./clean-close.js";
import type { Agg, Statements } from "./statements.js";

type Snapshot = Pick<RowCounts, "total" | "pending" | "pendingBytes" | "floor">;

/**
 * Row counts kept in step with appends and pruning, so that limits and stats never count rows: all rows,
 * and the pending ones (seq > floor, the slowest sink's cursor; every row when no sink is registered).
 */
export class RowCounts {
  total = 0;
  pending = 0;
  pendingBytes = 0;
  /** The cursor floor `pending` was counted from; see sync(). */
  floor = 0;

  constructor(private readonly sql: Statements) {}

  /** From the clean-close record, or from indexed aggregates (a scan of the rows, none loaded one by one). */
  load(clean: CleanClose | undefined, floor: number): void {
    if (clean !== undefined) {
      // The floor may have moved since (a sink dropped on start): sync() counts the difference.
      this.restore({
        total: clean.totalRows,
        pending: clean.pendingCount,
        pendingBytes: clean.pendingBytes,
        floor: clean.countedFloor,
      });
      return;
    }
    const agg = this.sql.aggAfter.get(floor);
    const total = this.sql.countRows.get()?.n ?? 0;
    this.restore({ total, pending: agg?.n ?? 0, pendingBytes: agg?.b ?? 0, floor });
  }

  /** Move to the current floor with one range aggregate over the rows in between. */
  sync(floor: number): void {
    if (floor === this.floor) return;
    const agg = this.sql.aggRange.get(Math.min(floor, this.floor), Math.max(floor, this.floor)) ?? {
      n: 0,
      b: 0,
    };
    const sign = floor > this.floor ? -1 : 1;
    this.pending += sign * agg.n;
    this.pendingBytes += sign * agg.b;
    this.floor = floor;
  }

  added(bytes: number): void {
    this.total += 1;
    this.pending += 1;
    this.pendingBytes += bytes;
  }

  /** A prune chunk committed: `n` rows, `agg` of them pending only when no sink is registered (floor 0). */
  deleted(n: number, agg: Agg, noSinks: boolean): void {
    this.total -= n;
    if (!noSinks) return;
    this.pending -= agg.n;
    this.pendingBytes -= agg.b;
  }

  snapshot(): Snapshot {
    return { total: this.total, pending: this.pending, pendingBytes: this.pendingBytes, floor: this.floor };
  }

  restore(s: Snapshot): void {
    ({ total: this.total, pending: this.pending, pendingBytes: this.pendingBytes, floor: this.floor } = s);
  }

  /** What a clean close records (clean-close.ts). */
  record(head: number): CleanClose {
    const { total, pending, pendingBytes, floor } = this;
    return { head, totalRows: total, countedFloor: floor, pendingCount: pending, pendingBytes };
  }
}
