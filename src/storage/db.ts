import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { BrokerUnavailableError } from "../errors.js";
import { type CleanClose, clearCleanClose, readCleanClose } from "./clean-close.js";

/** Bumped when the table layout changes; an older herald refuses a newer file instead of misreading it. */
export const SCHEMA_VERSION = 1;

export interface OpenDbOptions {
  path: string;
  synchronous: "full" | "normal";
  maxPageCount: number | undefined;
}

/**
 * Open (or create) the outbox database: check it (unless the last run closed it cleanly), quarantine it if
 * it is damaged, set the pragmas and make sure the tables exist. Throws STORAGE_ERROR; never starts empty
 * over a damaged file. `clean` is the last run's clean-close record, consumed by this open.
 */
export function openDatabase(opts: OpenDbOptions): { db: Database.Database; clean: CleanClose | undefined } {
  makeDir(opts.path);
  const existed = existsSync(opts.path);
  let db: Database.Database;
  try {
    // A locked file is waited for up to 5 s (a broker still exiting while its successor starts), then it
    // is reported in use (see inUseError).
    db = new Database(opts.path, { timeout: 5000 });
  } catch (err) {
    throw storageError(`cannot open the outbox ${opts.path}: ${(err as Error).message}`, err, opts.path);
  }
  // EXCLUSIVE: the broker is the file's only user (`herald status` asks the broker, not the file), so SQLite
  // takes its lock once and keeps it, and keeps the WAL index in process memory rather than the -shm file.
  // That drops six fcntl() lock calls from every append commit: one caller's publish 1.067x, broker CPU
  // 299 -> 274 us per message (bench/ab.mjs). It also means a second process cannot open a live outbox.
  // Set before anything reads the file, and before WAL mode, for the in-memory WAL index.
  try {
    db.pragma("locking_mode = EXCLUSIVE");
  } catch (err) {
    db.close();
    throw storageError(`cannot open the outbox ${opts.path}: ${(err as Error).message}`, err, opts.path);
  }
  // After a clean close the file is vouched for (clean-close.ts); otherwise check every page.
  let clean: CleanClose | undefined;
  try {
    clean = existed ? readCleanClose(db) : undefined;
  } catch (err) {
    db.close();
    throw isBusy(err) ? inUseError(opts.path, err) : err;
  }
  if (existed && clean === undefined) checkIntegrity(db, opts.path);
  try {
    applyPragmas(db, opts);
    createSchema(db, opts.path);
    if (clean !== undefined) clearCleanClose(db);
  } catch (err) {
    db.close();
    if (err instanceof BrokerUnavailableError) throw err;
    if (isBusy(err)) throw inUseError(opts.path, err);
    throw storageError(`cannot prepare the outbox ${opts.path}: ${(err as Error).message}`, err, opts.path);
  }
  return { db, clean };
}

/** SQLITE_BUSY (and its extended codes): another connection holds the file's lock. */
function isBusy(err: unknown): boolean {
  return errorCode(err).startsWith("SQLITE_BUSY");
}

function inUseError(path: string, cause: unknown): BrokerUnavailableError {
  return storageError(
    `the outbox ${path} is in use by another process (another herald serve with the same paths.dataDir or ` +
      "outbox.path?): stop that one, or give this broker its own outbox.path",
    cause,
    path,
    { inUse: true },
  );
}

function applyPragmas(db: Database.Database, opts: OpenDbOptions): void {
  // WAL: a commit is one sequential append to the -wal file plus one fsync, and the sinks' reads (on this
  // same connection) never wait for a commit.
  const mode = db.pragma("journal_mode = WAL", { simple: true });
  if (mode !== "wal") throw new Error(`the file system refused WAL mode (journal_mode is ${String(mode)})`);
  // FULL: the WAL is fsynced at every commit, so an acknowledged message survives power loss. NORMAL only
  // fsyncs at checkpoints: it survives a process crash but can lose the last commits on an OS crash.
  db.pragma(`synchronous = ${opts.synchronous === "normal" ? "NORMAL" : "FULL"}`);
  // Checkpoint the WAL into the main file every ~4 MB (1000 pages), SQLite's default, stated explicitly so
  // the WAL stays small and reopening after a crash replays little; truncate it back to 64 MB at most.
  db.pragma("wal_autocheckpoint = 1000");
  db.pragma("journal_size_limit = 67108864");
  // A 4 MiB page cache: it bounds what the outbox holds in RAM whatever the backlog. Writes append to the
  // tails of the messages and id b-trees (ids are time-ordered) and reads of recent rows come from the
  // in-memory window, so the hot set is small: against better-sqlite3's 16 MiB default, the 1M-backlog RSS
  // fell 10-14 MB with no change in throughput (bench/ab.mjs, multiWindow 1.015x, single 1.06x).
  db.pragma("cache_size = -4096");
  if (opts.maxPageCount !== undefined) db.pragma(`max_page_count = ${Math.floor(opts.maxPageCount)}`);
}

function createSchema(db: Database.Database, path: string): void {
  db.exec(`
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS messages (
      seq INTEGER PRIMARY KEY,          -- assigned by us, never reused (see meta.head_seq)
      id TEXT NOT NULL UNIQUE,          -- the dedup index
      accepted_at INTEGER NOT NULL,     -- ms since epoch, non-decreasing with seq
      bytes INTEGER NOT NULL,           -- length of envelope, summed for the pending-bytes limit
      envelope BLOB NOT NULL            -- encodeEnvelope(message) without seq/stream
    );
    CREATE TABLE IF NOT EXISTS cursors (sink TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
  `);
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
    | { value: string }
    | undefined;
  if (row === undefined) {
    db.prepare("INSERT INTO meta (key, value) VALUES ('schema_version', ?), ('head_seq', '0')").run(
      String(SCHEMA_VERSION),
    );
  } else if (Number(row.value) > SCHEMA_VERSION) {
    throw storageError(
      `the outbox ${path} has schema version ${row.value}, newer than this herald understands ` +
        `(${SCHEMA_VERSION}): upgrade herald, or point outbox.path at another file`,
      undefined,
      path,
    );
  }
}

/**
 * `PRAGMA quick_check` (O(N) but cheap: no index cross-checks). Only damage moves the file aside: rows that
 * fail the check, or SQLite finding the file corrupt or not a database. Anything else (a lock, permissions,
 * out of file descriptors, an I/O error) says nothing about the file: moving it aside would start the next
 * run empty and drop every message it holds, so the open fails and the file stays where it is.
 */
function checkIntegrity(db: Database.Database, path: string): void {
  let problem: string | undefined;
  let cause: unknown;
  try {
    const rows = db.pragma("quick_check") as Array<{ quick_check: string }>;
    const bad = rows.map((r) => r.quick_check).filter((r) => r !== "ok");
    if (bad.length > 0) problem = bad.slice(0, 3).join("; ");
  } catch (err) {
    if (!isDamage(err)) {
      db.close();
      throw isBusy(err) ? inUseError(path, err) : uncheckedError(path, err);
    }
    problem = (err as Error).message;
    cause = err;
  }
  if (problem === undefined) return;
  db.close();
  const moved = quarantine(path, problem, cause);
  throw storageError(
    `the outbox ${path} is damaged (${problem}); it was moved aside to ${moved} and herald did not start. ` +
      `Fix: check the disk, then restart herald serve to begin with a new empty outbox (messages in the ` +
      `damaged file are not delivered; try 'sqlite3 ${moved} .recover' to salvage them)`,
    cause,
    path,
    { quarantined: moved },
  );
}

function isDamage(err: unknown): boolean {
  const code = errorCode(err);
  return code.startsWith("SQLITE_CORRUPT") || code === "SQLITE_NOTADB";
}

/** The file could not be checked, for a reason that is not damage: name it and what to do about it. */
function uncheckedError(path: string, err: unknown): BrokerUnavailableError {
  const code = errorCode(err) || "error";
  return storageError(
    `cannot check the outbox ${path} (${code}: ${(err as Error).message}); it was left where it is, and ` +
      `herald did not start. Fix: ${uncheckedFix(code)}, then restart herald serve`,
    err,
    path,
    { sqliteCode: code },
  );
}

function uncheckedFix(code: string): string {
  const access =
    "check the owner and mode of the file, its -wal and -shm files and their directory: herald's user must " +
    "be able to read and write them (a file left by a run as another user, or restored from a backup?)";
  if (code === "SQLITE_CANTOPEN")
    return `${access}; or the process ran out of file descriptors (raise ulimit -n or systemd's LimitNOFILE=)`;
  if (/^SQLITE_(READONLY|PERM|AUTH|IOERR_LOCK)/.test(code)) return access;
  if (code === "SQLITE_NOMEM") return "give herald more memory";
  return "check the disk (dmesg) and the file's permissions";
}

/**
 * Rename the file (and its -wal/-shm companions) to `<path>.corrupt-<ts>`; returns the new main path.
 * Throws STORAGE_ERROR naming the damage (`problem`) when a rename fails.
 */
export function quarantine(path: string, problem = "damaged", cause?: unknown): string {
  const target = `${path}.corrupt-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  for (const suffix of ["", "-wal", "-shm"]) {
    try {
      if (existsSync(path + suffix)) renameSync(path + suffix, target + suffix);
    } catch (err) {
      throw storageError(
        `the outbox ${path} is damaged (${problem}), and moving ${path + suffix} aside to ` +
          `${target + suffix} failed (${errorCode(err)}: ${(err as Error).message}); herald did not start. ` +
          "Fix: move the file and its -wal/-shm files aside yourself (or check the directory's permissions), " +
          "then restart herald serve to begin with a new empty outbox",
        cause ?? err,
        path,
        { quarantineFailed: target + suffix },
      );
    }
  }
  return target;
}

export function storageError(
  message: string,
  cause: unknown,
  path: string,
  extra: Record<string, unknown> = {},
): BrokerUnavailableError {
  return new BrokerUnavailableError("STORAGE_ERROR", message, {
    cause,
    retryable: false,
    details: { path, ...extra },
  });
}

function makeDir(path: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw storageError(
      `cannot create the directory of the outbox ${path} (${errorCode(err)}: ${(err as Error).message}). ` +
        "Fix: point outbox.path (or paths.dataDir) at a directory herald's user may create or write",
      err,
      path,
    );
  }
}

/** SQLite error code of a thrown value (`SQLITE_FULL`, `SQLITE_IOERR_FSYNC`, ...), or its errno code. */
export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : "";
}
