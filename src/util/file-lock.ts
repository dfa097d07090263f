import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { HeraldError } from "../errors.js";

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, not ours to signal
  }
}

/** Create `lock` holding our pid; false when it exists. A lock whose process is gone is taken over. */
function tryLock(lock: string): boolean {
  try {
    const fd = openSync(lock, "wx", 0o600);
    writeSync(fd, String(process.pid));
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const text = holderOf(lock);
  if (text === undefined) return tryLock(lock); // released between our open and our read
  const holder = Number.parseInt(text, 10);
  // An empty pid may be a holder between open and write: wait for it like a live one. Taking over a dead
  // holder's lock can race with another process doing the same (both then hold it); that needs a crash
  // inside the few milliseconds of an edit and two waiting editors, and is accepted.
  if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
    try {
      unlinkSync(lock);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    return tryLock(lock);
  }
  return false;
}

function holderOf(lock: string): string | undefined {
  try {
    return readFileSync(lock, "utf8").trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * Run `fn` holding `<file>.lock` (created exclusively next to the file), so that two processes editing the
 * same file (two cutover commands at once) read-check-write one after the other instead of losing one
 * edit. Synchronous: the edits it guards are synchronous reads and renames of a small file.
 */
export function withFileLock<T>(file: string, fn: () => T, waitMs = 10_000): T {
  const lock = `${file}.lock`;
  const deadline = Date.now() + waitMs;
  while (!tryLock(lock)) {
    if (Date.now() >= deadline) {
      const holder = holderOf(lock) || "unknown";
      // Contention, not a wrong configuration: retryable, and the CLI exits 1 (not 3, "fix your config").
      // The one caller edits stages for `herald cutover`, hence its code.
      throw new HeraldError(
        "CUTOVER_REFUSED",
        `${file} is being edited by another process (lock ${lock}, pid ${holder}): wait for it to finish, or remove ${lock} if no herald command is running`,
        { retryable: true, details: { file, lock, holder } },
      );
    }
    Atomics.wait(sleeper, 0, 0, 25);
  }
  try {
    return fn();
  } finally {
    unlinkSync(lock);
  }
}
