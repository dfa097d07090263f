import type Database from "better-sqlite3";
import { ClosedError, type HeraldError } from "../errors.js";
import type { Message } from "../wire/message.js";
import { type CleanClose, writeCleanClose } from "./clean-close.js";
import { type Prepared, prepare, readRows } from "./codec.js";
import { CommitQueue } from "./commit-queue.js";
import { RowCounts } from "./counts.js";
import { SinkCursors } from "./cursors.js";
import { errorCode, openDatabase, storageError } from "./db.js";
import { Failpoints, processFailpoints } from "./failpoints.js";
import { type OutboxTrace, traceId } from "./lookup.js";
import { FailStop, limitProblem } from "./outbox-errors.js";
import { deleteThrough } from "./prune.js";
import { RecentMessages, storedForm } from "./recent.js";
import { againStored, sameOrConflict } from "./same-message.js";
import { Stamps } from "./stamps.js";
import { prepareStatements, type Statements } from "./statements.js";
import type { AppendResult, OutboxOptions, OutboxStats, StoredMessage } from "./types.js";
import { AppendWaiters } from "./waiters.js";

export type { OutboxTrace } from "./lookup.js";
export type { AppendResult, OutboxOptions, OutboxStats, StoredMessage } from "./types.js";

const MiB = 1024 * 1024;

/**
 * The durable outbox: the broker acknowledges a message only after `append` resolved with `ok: true`, which
 * means the row is committed (WAL + fsync with synchronous=full). Every sink reads from here with its own
 * persisted cursor.
 *
 * The rules (sinks, dedup window, lazy cursors, limits, fail-stop) are in src/storage/README.md.
 */
export class Outbox {
  private readonly sql: Statements;
  private readonly fp: Failpoints;
  private readonly limits: { messages: number; bytes: number; keepMs: number };
  private readonly cursors: SinkCursors;
  private readonly waiters = new AppendWaiters();
  private readonly fails: FailStop;
  private readonly pruneTimer: NodeJS.Timeout;
  private readonly queue: CommitQueue;
  private head = 0;
  private readonly counts: RowCounts;
  private commits = 0;
  /** accepted_at for new rows and the prune cutoff: a clock that wall-clock steps do not move (stamps.ts). */
  private readonly stamps: Stamps;
  private readonly onClockBack: OutboxOptions["onClockBack"];
  private readonly onCleanCloseFailed: OutboxOptions["onCleanCloseFailed"];
  /** Rows inserted by the transaction in progress, cached once it commits. */
  private fresh: StoredMessage[] = [];
  private readonly recent = new RecentMessages();
  private closed = false;
  private readFailed = false;
  /**
   * Runs a function in a transaction. Made once: better-sqlite3 builds four wrapper functions and their
   * properties for every db.transaction() call, which cost more than the insert on the publish path.
   */
  private readonly tx: <T>(fn: () => T) => T;
  /** The last run closed the file cleanly: this open skipped the integrity check and the row scans. */
  readonly openedAfterCleanClose: boolean;

  private constructor(
    private readonly db: Database.Database,
    private readonly path: string,
    opts: OutboxOptions,
    clean: CleanClose | undefined,
  ) {
    this.openedAfterCleanClose = clean !== undefined;
    this.onClockBack = opts.onClockBack;
    this.onCleanCloseFailed = opts.onCleanCloseFailed;
    this.sql = prepareStatements(db);
    this.tx = db.transaction((fn: () => unknown) => fn()) as <T>(fn: () => T) => T;
    this.fails = new FailStop(path);
    this.queue = new CommitQueue(
      (messages) => this.commitBatch(messages),
      () => this.wakeSinks(),
    );
    this.fp = opts.failpoint === undefined ? processFailpoints() : new Failpoints(opts.failpoint);
    this.limits = {
      messages: opts.maxMessages ?? 1_000_000,
      bytes: opts.maxBytes ?? 1024 * MiB,
      keepMs: Math.max(opts.retentionMs ?? 10 * 60_000, opts.dedupWindowMs ?? 10 * 60_000),
    };
    this.cursors = new SinkCursors(
      this.sql,
      (during, fn) => this.write(during, fn),
      () => !this.closed && this.fails.error === undefined,
    );
    const last = this.sql.lastRow.get();
    // head_seq in meta survives pruning every row, so seqs are never reused.
    this.head = Math.max(Number(this.sql.getHead.get()?.value ?? 0), last?.seq ?? 0);
    this.stamps = new Stamps(this.sql, last?.accepted_at ?? 0, this.limits.keepMs);
    this.counts = new RowCounts(this.sql);
    this.counts.load(clean, this.cursors.floor());
    this.pruneTimer = setInterval(() => this.backgroundPrune(), opts.pruneIntervalMs ?? 30_000);
    this.pruneTimer.unref();
    this.fails.onFail(() => clearInterval(this.pruneTimer));
  }

  /** Open or create the outbox. Throws STORAGE_ERROR (after quarantining the file) if it is damaged. */
  static open(opts: OutboxOptions): Outbox {
    const { db, clean } = openDatabase({
      path: opts.path,
      synchronous: opts.synchronous ?? "full",
      maxPageCount: opts.maxPageCount,
    });
    try {
      return new Outbox(db, opts.path, opts, clean);
    } catch (err) {
      db.close();
      throw storageError(`cannot load the outbox ${opts.path}: ${(err as Error).message}`, err, opts.path);
    }
  }

  /** Group commit: all calls made in one event-loop turn share one transaction (one fsync). */
  append(messages: readonly Message[]): Promise<AppendResult[]> {
    return this.queue.push(messages);
  }

  /** Commit `messages` now, in one transaction. */
  appendSync(messages: readonly Message[]): AppendResult[] {
    const results = this.commitBatch(messages);
    this.waiters.notify(this.head);
    return results;
  }

  /**
   * Acknowledgements first, then the sinks: a publisher waits on its ack; a subscriber does not wait on a
   * particular message, and the sinks' reads and PUB encodes would otherwise run before the replies.
   */
  private wakeSinks(): void {
    const head = this.head;
    setImmediate(() => this.waiters.notify(head));
  }

  private commitBatch(messages: readonly Message[]): AppendResult[] {
    const stopped = this.closed ? new ClosedError("the outbox") : this.fails.error;
    if (stopped !== undefined) return messages.map((m) => ({ ok: false, id: String(m.id), error: stopped }));
    const prepared = messages.map(prepare);
    this.fresh = [];
    try {
      this.syncPending(); // a read; if even that fails, the disk is in trouble
    } catch (err) {
      return this.batchFailed(err, prepared);
    }
    const before = { head: this.head, counts: this.counts.snapshot() };
    let results: AppendResult[];
    try {
      results = this.tx(() => this.writeBatch(prepared, messages));
    } catch (err) {
      // The rollback undid the rows (and any restamp); undo the counters that were moved along with them.
      this.head = before.head;
      this.counts.restore(before.counts);
      this.stamps.rollback();
      return this.batchFailed(err, prepared);
    }
    this.commits += 1;
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
    const acceptedAt = this.stamps.begin(this.head);
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
      this.head += 1;
      this.sql.insert.run(this.head, p.id, acceptedAt, p.envelope.length, p.envelope);
      this.fresh.push({
        seq: this.head,
        acceptedAt,
        bytes: p.envelope.length,
        message: storedForm(messages[i]!),
      });
      inBatch.set(p.id, this.head);
      this.counts.added(p.envelope.length);
      return { ok: true, id: p.id, seq: this.head, acceptedAt, duplicate: false };
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

  /** Called once when the outbox enters fail-stop (immediately if it already has). */
  onFail(listener: (err: HeraldError) => void): void {
    this.fails.onFail(listener);
  }

  get failed(): HeraldError | undefined {
    return this.fails.error;
  }

  /** Register a sink and return its cursor: the persisted one, or the current head for a new sink. */
  registerSink(name: string): number {
    this.assertOpen();
    return this.cursors.register(name, this.head);
  }

  unregisterSink(name: string): void {
    this.assertOpen();
    this.cursors.unregister(name);
  }

  /** Run a small write; throw STORAGE_FULL / STORAGE_ERROR (entering fail-stop for real I/O errors). */
  private write(during: string, fn: () => unknown): void {
    if (this.fails.error !== undefined) throw this.fails.error;
    try {
      this.tx(fn);
    } catch (err) {
      throw this.fails.classify(err, during);
    }
  }

  /** Up to `limit` messages with seq > afterSeq, stopping once `maxBytes` is reached (at least one row). */
  read(afterSeq: number, limit: number, maxBytes = Number.POSITIVE_INFINITY): StoredMessage[] {
    this.assertOpen();
    const cached = this.recent.read(afterSeq, limit, maxBytes);
    if (cached !== undefined) return cached;
    try {
      // iterate(), so that the rows past the byte cap are never loaded (see readRows).
      return readRows(this.sql.page.iterate(afterSeq, limit), maxBytes, this.path);
    } catch (err) {
      this.readFailed = true; // damage found at run time: the next open must check the whole file
      // SQLite itself failed (a damaged page, an I/O error), not one row's envelope: the file can no longer
      // be trusted, so stop acknowledging (fail-stop, the broker exits 5) rather than go on storing
      // messages in a file the next open will move aside.
      if (errorCode(err).startsWith("SQLITE_"))
        throw this.fails.classify(err, "reading messages for the sinks");
      throw err;
    }
  }

  /**
   * Advance a sink's cursor (monotonic). Persisted by a timer within 100 ms (and before a prune; never by
   * an append commit), together with `state` when given (the sink's own, read back with sinkState() after
   * a restart).
   */
  ack(sink: string, seq: number, state?: string): void {
    this.assertOpen();
    this.cursors.advance(sink, seq, this.head, state);
  }

  /** The state a sink last acked with (see ack), kept across restarts; undefined when it never gave one. */
  sinkState(sink: string): string | undefined {
    this.assertOpen();
    return this.cursors.state(sink);
  }

  /** Write every changed cursor now. */
  flushCursors(): void {
    this.cursors.flush();
  }

  /** What the outbox knows of one message id (`herald trace`). */
  trace(id: string): OutboxTrace {
    this.assertOpen();
    return traceId(this.sql, id, (after) => this.read(after, 1)[0], this.limits.keepMs);
  }

  /** A sink's last passed-over messages, kept for `herald trace` across restarts. */
  passedOver(sink: string): Map<number, string> {
    return this.cursors.passedOver(sink);
  }

  savePassedOver(sink: string, passed: ReadonlyMap<number, string>): void {
    this.cursors.savePassedOver(sink, passed);
  }

  /** The highest seq ever committed (its row may be pruned since). */
  get headSeq(): number {
    return this.head;
  }

  /** The lowest seq still stored (head + 1 when none is): a sink's cursor below it has nothing to resend. */
  firstSeq(): number {
    this.assertOpen();
    return this.sql.minSeq.get()?.s ?? this.head + 1;
  }

  /** Resolves when a message with seq > afterSeq is committed; rejects on abort or close. */
  waitForAppend(afterSeq: number, signal?: AbortSignal): Promise<void> {
    if (this.head > afterSeq) return Promise.resolve();
    if (this.closed) return Promise.reject(new ClosedError("the outbox"));
    return this.waiters.wait(afterSeq, signal);
  }

  /**
   * Delete rows that every registered sink has acked AND that are older than max(retention, dedupWindow)
   * on the outbox clock (stamps.ts; tests pass `now`). With no sink registered nothing can ever read old
   * rows (a new sink starts at the head), so only age counts. Deletes in chunks so one prune never holds
   * the write lock for long. Returns rows deleted.
   */
  prune(now?: number): number {
    this.assertOpen();
    if (this.fails.error !== undefined) return 0;
    this.saveClock();
    // The cursors first: a crash after the delete then leaves none pointing before rows that are gone.
    this.cursors.flush();
    this.syncPending();
    const delivered = this.cursors.size > 0 ? this.counts.floor : this.head;
    const young = this.sql.firstYoung.get(delivered, (now ?? this.stamps.now()) - this.limits.keepMs);
    const upTo = young === undefined ? delivered : young.seq - 1;
    return deleteThrough(
      this.sql,
      (d, fn) => this.write(d, fn),
      this.head,
      upTo,
      (end, n, agg) => {
        this.counts.deleted(n, agg, this.cursors.size === 0);
        this.recent.dropThrough(end);
      },
    );
  }

  /** Save the outbox clock's offset if a wall-clock step moved it (stamps.ts). */
  private saveClock(): void {
    try {
      this.stamps.maintain((during, fn) => this.write(during, fn));
    } catch {
      // SQLITE_FULL or fail-stop: retried at the next prune; until then a restart may age rows by the step.
    }
  }

  private backgroundPrune(): void {
    try {
      if (!this.closed) this.prune();
    } catch {
      // SQLITE_FULL: retried at the next tick. Real I/O errors already put the outbox in fail-stop.
    }
  }

  stats(): OutboxStats {
    this.assertOpen();
    this.syncPending();
    const sinks: OutboxStats["sinks"] = {};
    for (const [name, cursor] of this.cursors.entries()) sinks[name] = { cursor, lag: this.head - cursor };
    const stats: OutboxStats = {
      headSeq: this.head,
      totalRows: this.counts.total,
      pendingMessages: this.counts.pending,
      pendingBytes: this.counts.pendingBytes,
      oldestPendingAt: this.sql.oldestAfter.get(this.counts.floor)?.accepted_at,
      sinks,
      commits: this.commits,
      restampedRows: this.stamps.restampedRows,
    };
    if (this.fails.error !== undefined) stats.failed = this.fails.error.message;
    return stats;
  }

  /**
   * Commit queued appends, flush cursors, record a clean close (unless `clean: false`: the next open then
   * checks the file and reports an unclean stop), close the database. Idempotent.
   */
  close(opts: { clean?: boolean } = {}): void {
    if (this.closed) return;
    this.queue.drain();
    this.saveClock();
    this.flushCursors();
    if (opts.clean ?? true) this.recordCleanClose();
    this.closed = true;
    clearInterval(this.pruneTimer);
    this.cursors.stop();
    this.waiters.rejectAll(new ClosedError("the outbox"));
    try {
      this.db.close();
    } catch {
      // After an I/O error SQLite may fail to close cleanly; the WAL recovers on the next open.
    }
  }

  /** Vouch for the file to the next open (clean-close.ts), unless this run failed or found damage. */
  private recordCleanClose(): void {
    if (this.fails.error !== undefined || this.readFailed) return;
    const failed = writeCleanClose(this.db, this.counts.record(this.head));
    if (failed !== undefined) this.onCleanCloseFailed?.(failed);
  }

  /** Pending = rows after the slowest sink's cursor (all rows with no sink): count from where it is now. */
  private syncPending(): void {
    this.counts.sync(this.cursors.floor());
  }

  private assertOpen(): void {
    if (this.closed) throw new ClosedError("the outbox");
  }
}
