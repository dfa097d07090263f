import type Database from "better-sqlite3";
import { ClosedError, type HeraldError } from "../errors.js";
import type { Message } from "../wire/message.js";
import { Appender } from "./appender.js";
import { type CleanClose, writeCleanClose } from "./clean-close.js";
import { readRows } from "./codec.js";
import { CommitQueue } from "./commit-queue.js";
import { RowCounts } from "./counts.js";
import { SinkCursors } from "./cursors.js";
import { errorCode, openDatabase, storageError } from "./db.js";
import { Failpoints, processFailpoints } from "./failpoints.js";
import { type OutboxTrace, traceId } from "./lookup.js";
import { FailStop } from "./outbox-errors.js";
import { deleteThrough } from "./prune.js";
import { RecentMessages } from "./recent.js";
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
  private readonly limits: { messages: number; bytes: number; keepMs: number };
  private readonly cursors: SinkCursors;
  private readonly waiters = new AppendWaiters();
  private readonly fails: FailStop;
  private readonly pruneTimer: NodeJS.Timeout;
  private readonly queue: CommitQueue;
  /** The commit path; it keeps the head. */
  private readonly appender: Appender;
  private readonly counts: RowCounts;
  /** accepted_at for new rows and the prune cutoff: a clock that wall-clock steps do not move (stamps.ts). */
  private readonly stamps: Stamps;
  private readonly onCleanCloseFailed: OutboxOptions["onCleanCloseFailed"];
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
    this.onCleanCloseFailed = opts.onCleanCloseFailed;
    this.sql = prepareStatements(db);
    this.tx = db.transaction((fn: () => unknown) => fn()) as <T>(fn: () => T) => T;
    this.fails = new FailStop(path);
    this.queue = new CommitQueue(
      (messages) => this.commitBatch(messages),
      () => this.wakeSinks(),
    );
    const fp = opts.failpoint === undefined ? processFailpoints() : new Failpoints(opts.failpoint);
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
    const head = Math.max(Number(this.sql.getHead.get()?.value ?? 0), last?.seq ?? 0);
    this.stamps = new Stamps(this.sql, last?.accepted_at ?? 0, this.limits.keepMs);
    this.counts = new RowCounts(this.sql);
    this.counts.load(clean, this.cursors.floor());
    const { sql, tx, fails, limits, counts, stamps, recent } = this;
    const parts = { sql, tx, fails, fp, limits, counts, stamps, recent, onClockBack: opts.onClockBack };
    this.appender = new Appender({ ...parts, syncPending: () => this.syncPending() }, head);
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
    this.waiters.notify(this.appender.head);
    return results;
  }

  /**
   * Acknowledgements first, then the sinks: a publisher waits on its ack; a subscriber does not wait on a
   * particular message, and the sinks' reads and PUB encodes would otherwise run before the replies.
   */
  private wakeSinks(): void {
    const head = this.appender.head;
    setImmediate(() => this.waiters.notify(head));
  }

  /** The queue's commit (and appendSync's): refused whole once closed or failed, else one transaction. */
  private commitBatch(messages: readonly Message[]): AppendResult[] {
    const stopped = this.closed ? new ClosedError("the outbox") : this.fails.error;
    if (stopped !== undefined) return messages.map((m) => ({ ok: false, id: String(m.id), error: stopped }));
    return this.appender.commit(messages);
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
    return this.cursors.register(name, this.appender.head);
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
    this.cursors.advance(sink, seq, this.appender.head, state);
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
    return this.appender.head;
  }

  /** The lowest seq still stored (head + 1 when none is): a sink's cursor below it has nothing to resend. */
  firstSeq(): number {
    this.assertOpen();
    return this.sql.minSeq.get()?.s ?? this.appender.head + 1;
  }

  /** Resolves when a message with seq > afterSeq is committed; rejects on abort or close. */
  waitForAppend(afterSeq: number, signal?: AbortSignal): Promise<void> {
    if (this.appender.head > afterSeq) return Promise.resolve();
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
    const delivered = this.cursors.size > 0 ? this.counts.floor : this.appender.head;
    const young = this.sql.firstYoung.get(delivered, (now ?? this.stamps.now()) - this.limits.keepMs);
    const upTo = young === undefined ? delivered : young.seq - 1;
    return deleteThrough(
      this.sql,
      (d, fn) => this.write(d, fn),
      this.appender.head,
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
    for (const [name, cursor] of this.cursors.entries())
      sinks[name] = { cursor, lag: this.appender.head - cursor };
    const stats: OutboxStats = {
      headSeq: this.appender.head,
      totalRows: this.counts.total,
      pendingMessages: this.counts.pending,
      pendingBytes: this.counts.pendingBytes,
      oldestPendingAt: this.sql.oldestAfter.get(this.counts.floor)?.accepted_at,
      sinks,
      commits: this.appender.commits,
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
    const failed = writeCleanClose(this.db, this.counts.record(this.appender.head));
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
