import { closeSync, fstatSync, fsync, fsyncSync, openSync, statSync } from "node:fs";
import type { Failpoints } from "./failpoints.js";

/** Called once everything committed before the matching `after()` is on disk, or with the fsync error. */
export type SyncDone = (err: Error | undefined) => void;

/**
 * Group fsync of the SQLite WAL, off the event loop.
 *
 * Why: with `PRAGMA synchronous=FULL` SQLite fsyncs inside every commit, on the JavaScript thread, so the
 * broker can neither read the next requests nor answer anyone for the whole fsync (40-50% of its time under
 * load). Instead the database runs with synchronous=NORMAL (a commit is a write into the page cache; SQLite
 * still syncs around checkpoints) and this class fsyncs the `-wal` file on libuv's thread pool. fsync is
 * per file, not per descriptor, so it makes every frame any connection wrote to that WAL durable. Commits
 * made while one fsync is in flight share the next one: group commit without holding the event loop.
 *
 * Acknowledgements and sinks wait for `done`, so nothing is acknowledged or published that is not on disk.
 */
export class WalSync {
  private fd: number | undefined;
  private queued: SyncDone[] = [];
  private inFlight: SyncDone[] | undefined;
  private closed = false;
  /** The descriptor an fsync on the thread pool is using; it must not be closed under it. */
  private running: number | undefined;
  /** Completed fsyncs, for stats and tests. */
  syncs = 0;

  constructor(
    private readonly walPath: string,
    private readonly fp: Failpoints,
  ) {}

  /** Call right after a commit: `done` runs when an fsync that started after this call has finished. */
  after(done: SyncDone): void {
    if (this.closed) {
      done(new Error("the outbox is closed"));
      return;
    }
    this.queued.push(done);
    if (this.inFlight === undefined) this.start();
  }

  /** fsync now, on this thread (the synchronous append path and small writes); throws on failure. */
  syncNow(): void {
    this.fp.hit("outbox.fsync");
    fsyncSync(this.descriptor());
    this.syncs += 1;
  }

  /** Flush what is waiting with one synchronous fsync and answer every waiter; later `after` calls fail. */
  close(): void {
    if (this.closed) return;
    const waiting = [...(this.inFlight ?? []), ...this.queued];
    this.inFlight = undefined;
    this.queued = [];
    let error: Error | undefined;
    if (waiting.length > 0) {
      try {
        this.syncNow();
      } catch (err) {
        error = err as Error;
      }
    }
    this.closed = true;
    // An fsync still running on the thread pool holds its descriptor: its callback closes it instead.
    if (this.running !== this.fd) this.closeFd();
    for (const done of waiting) done(error);
  }

  private start(): void {
    const batch = this.queued;
    this.queued = [];
    this.inFlight = batch;
    let fd: number;
    try {
      this.fp.hit("outbox.fsync");
      fd = this.descriptor();
    } catch (err) {
      this.inFlight = undefined;
      for (const done of batch) done(err as Error);
      return;
    }
    this.running = fd;
    fsync(fd, (err) => {
      this.running = undefined;
      if (this.closed || fd !== this.fd) closeQuietly(fd);
      if (this.closed) return; // close() already answered this batch after its own fsync
      this.inFlight = undefined;
      if (err === null) this.syncs += 1;
      for (const done of batch) done(err ?? undefined);
      if (this.queued.length > 0) this.start();
    });
  }

  /**
   * The open `-wal` descriptor. SQLite keeps one WAL file for the life of the connection (it truncates and
   * rewrites it in place, deleting it only on close); if it was ever replaced, an fsync of the old inode would
   * prove nothing, so the inode is checked on every sync (one stat, microseconds).
   */
  private descriptor(): number {
    if (this.fd !== undefined && fstatSync(this.fd).ino === statSync(this.walPath).ino) return this.fd;
    if (this.running !== this.fd) this.closeFd();
    this.fd = openSync(this.walPath, "r");
    return this.fd;
  }

  private closeFd(): void {
    if (this.fd !== undefined) closeQuietly(this.fd);
    this.fd = undefined;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed or never valid: nothing to release.
  }
}
