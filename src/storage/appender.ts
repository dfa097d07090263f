import type { Message } from "../wire/message.js";
import { type Prepared, prepare } from "./codec.js";
import type { RowCounts } from "./counts.js";
import type { Failpoints } from "./failpoints.js";
import { type FailStop, limitProblem } from "./outbox-errors.js";
import { type RecentMessages, storedForm } from "./recent.js";
import { againStored, sameOrConflict } from "./same-message.js";
import type { Stamps } from "./stamps.js";
import type { Statements } from "./statements.js";
import type { AppendResult, OutboxOptions, StoredMessage } from "./types.js";

/** What the append transaction shares with the rest of the outbox (reads, prunes, stats). */
export interface AppenderParts {
  sql: Statements;
  /** The outbox's transaction runner (made once: see Outbox.tx). */
  tx: <T>(fn: () => T) => T;
  fails: FailStop;
  fp: Failpoints;
  limits: { messages: number; bytes: number };
  counts: RowCounts;
  stamps: Stamps;
  recent: RecentMessages;
  /** Bring the pending counts to the slowest sink's cursor before the limits are checked. */
  syncPending: () => void;
  onClockBack: OutboxOptions["onClockBack"];
}

/**
 * The outbox's append transaction, the publish path's commit: dedup, limits and inserts in one
 * transaction; after it, the stamps, the recent-rows cache and the after-commit failpoint. It owns the head
 * (the highest seq ever committed), which only a commit moves. The rules are in src/storage/README.md.
 */
export class Appender {
  private readonly sql: Statements;
  private readonly tx: <T>(fn: () => T) => T;
  private readonly fails: FailStop;
  private readonly fp: Failpoints;
  private readonly limits: { messages: number; bytes: number };
  private readonly counts: RowCounts;
  private readonly stamps: Stamps;
  private readonly recent: RecentMessages;
  private readonly syncPending: () => void;
  private readonly onClockBack: OutboxOptions["onClockBack"];
  private last: number;
  private committed = 0;
  /** Rows inserted by the transaction in progress, cached once it commits. */
  private fresh: StoredMessage[] = [];

  // Own fields rather than one `parts` object: writeBatch reads them once per message.
  constructor(parts: AppenderParts, head: number) {
    this.sql = parts.sql;
    this.tx = parts.tx;
    this.fails = parts.fails;
    this.fp = parts.fp;
    this.limits = parts.limits;
    this.counts = parts.counts;
    this.stamps = parts.stamps;
    this.recent = parts.recent;
    this.syncPending = parts.syncPending;
    this.onClockBack = parts.onClockBack;
    this.last = head;
  }

  /** The highest seq ever committed (its row may be pruned since). */
  get head(): number {
    return this.last;
  }

  /** Committed append transactions. */
  get commits(): number {
    return this.committed;
  }

  /** Commit `messages` in one transaction; the outbox has checked that it is open and not failed. */
  commit(messages: readonly Message[]): AppendResult[] {
    const prepared = messages.map(prepare);
    this.fresh = [];
    try {
      this.syncPending(); // a read; if even that fails, the disk is in trouble
    } catch (err) {
      return this.batchFailed(err, prepared);
    }
    const before = { head: this.last, counts: this.counts.snapshot() };
    let results: AppendResult[];
    try {
      results = this.tx(() => this.writeBatch(prepared, messages));
    } catch (err) {
      // The rollback undid the rows (and any restamp); undo the counters that were moved along with them.
      this.last = before.head;
      this.counts.restore(before.counts);
      this.stamps.rollback();
      return this.batchFailed(err, prepared);
    }
    this.committed += 1;
    const restamp = this.stamps.commit(this.fresh[0]?.acceptedAt);
    // Cached rows carry the old stamps: the cache starts afresh.
    if (restamp !== undefined) this.recent.clear();
    this.recent.add(this.fresh);
    if (restamp !== undefined) this.onClockBack?.(restamp);
    try {
      this.fp.hit("outbox.after_commit");
    } catch (err) {
      // The rows are committed: report them as stored (an error reply must mean "not stored"), but stop
      // accepting anything more.
      this.fails.stop(err, "the step after an append commit");
    }
    return results;
  }

  /** Runs inside the transaction: dedup, limits, inserts, lazy cursors, head. */
  private writeBatch(prepared: readonly Prepared[], messages: readonly Message[]): AppendResult[] {
    const acceptedAt = this.stamps.begin(this.last);
    const inBatch = new Map<string, number>();
    const results = prepared.map((p, i): AppendResult => {
      if ("error" in p) return { ok: false, id: p.id, error: p.error };
      // A known id is a duplicate only with the same content, else ID_CONFLICT (same-message.ts).
      const batchSeq = inBatch.get(p.id);
      if (batchSeq !== undefined)
        return sameOrConflict(this.freshAt(batchSeq), messages[i]!, p.id, { seq: batchSeq, acceptedAt });
      const found = this.sql.findId.get(p.id);
      if (found !== undefined) return againStored(this.sql, p, messages[i]!, found);
      const full = limitProblem(this.limits, this.counts, p.id, p.envelope.length);
      if (full !== undefined) return { ok: false, id: p.id, error: full };
      this.last += 1;
      this.sql.insert.run(this.last, p.id, acceptedAt, p.envelope.length, p.envelope);
      this.fresh.push({
        seq: this.last,
        acceptedAt,
        bytes: p.envelope.length,
        message: storedForm(messages[i]!),
      });
      inBatch.set(p.id, this.last);
      this.counts.added(p.envelope.length);
      return { ok: true, id: p.id, seq: this.last, acceptedAt, duplicate: false };
    });
    // Neither the head (max(seq) of the rows says it; meta.head_seq is written before pruning can remove
    // them) nor the cursors (a timer writes those) are written here: every page an append commit touches
    // is a page to fsync on the publisher's critical path.
    this.fp.hit("outbox.before_commit");
    return results;
  }

  /** The message of a row this transaction inserted (they are contiguous from fresh[0]). */
  private freshAt(seq: number): Message {
    return this.fresh[seq - this.fresh[0]!.seq]!.message;
  }

  /** The whole transaction rolled back: decide between a retryable error and fail-stop. */
  private batchFailed(err: unknown, prepared: readonly Prepared[]): AppendResult[] {
    const error = this.fails.classify(err, "an append commit");
    return prepared.map((p) => ({ ok: false, id: p.id, error }));
  }
}
