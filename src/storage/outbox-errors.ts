import { BrokerUnavailableError, type HeraldError, MessageRejectedError } from "../errors.js";
import { errorCode } from "./db.js";

/** The one error every append gets once the outbox is in fail-stop. */
export function failStopError(path: string, during: string, cause: unknown): BrokerUnavailableError {
  const code = errorCode(cause) || "error";
  const what = cause instanceof Error ? cause.message : String(cause);
  return new BrokerUnavailableError(
    "STORAGE_ERROR",
    `the outbox ${path} failed during ${during} (${code}: ${what}); herald stopped accepting messages so that ` +
      `nothing is acknowledged that may not be on disk. Fix: check the disk (dmesg, free space), then restart ` +
      `herald serve; the outbox recovers from its WAL`,
    { cause, retryable: true, details: { path, during, sqliteCode: code } },
  );
}

export function storageFullError(path: string, cause: unknown): BrokerUnavailableError {
  return new BrokerUnavailableError(
    "STORAGE_FULL",
    `the outbox ${path} is out of space (SQLITE_FULL): nothing in this batch was stored. Fix: free disk ` +
      `space on that file system (or raise its quota); herald accepts again as soon as there is room`,
    { cause, retryable: true, details: { path } },
  );
}

export function busyError(path: string, cause: unknown): BrokerUnavailableError {
  return new BrokerUnavailableError(
    "STORAGE_ERROR",
    `the outbox ${path} is locked by another process, nothing in this batch was stored. Fix: make sure only ` +
      `one herald serve uses this file (outbox.path); retry`,
    { cause, retryable: true, details: { path } },
  );
}

export function outboxFullError(
  limit: "maxMessages" | "maxBytes",
  value: number,
  pending: number,
): BrokerUnavailableError {
  const unit = limit === "maxBytes" ? " bytes" : " messages";
  return new BrokerUnavailableError(
    "OUTBOX_FULL",
    `the outbox holds ${pending}${unit} not yet delivered, the limit is ${value} (outbox.${limit}): ` +
      `a sink is behind: see \`herald status\`; raise outbox.${limit} or fix the slow sink. Retry later`,
    { retryable: true, details: { limit: `outbox.${limit}`, value, pending } },
  );
}

/** A message that could not be stored even in an empty outbox: retrying cannot help. */
export function tooLargeForOutbox(id: string, bytes: number, maxBytes: number): HeraldError {
  return new MessageRejectedError(
    "TOO_LARGE",
    `message ${JSON.stringify(id)} takes ${bytes} bytes stored, more than the whole outbox may hold ` +
      `(outbox.maxBytes: ${maxBytes}), so it can never be stored. Fix: send a smaller message, or raise ` +
      "outbox.maxBytes well above limits.maxBodyBytes",
    { details: { id, bytes, limit: "outbox.maxBytes", value: maxBytes } },
  );
}

/**
 * Another message already holds this id. Not a duplicate: answering "ok" would tell its publisher it was
 * stored while subscribers only ever get the first one. Not retryable: the id stays taken.
 */
export function idConflictError(id: string, difference: string, storedSeq: number): HeraldError {
  return new MessageRejectedError(
    "ID_CONFLICT",
    `message ${JSON.stringify(id)}: id already stored with different content (${difference}): ids must ` +
      "be unique; publish it with a new id (createMessage() makes one). The stored message is the one " +
      "delivered",
    { details: { id, storedSeq } },
  );
}

export function invalidForOutbox(id: string, reason: string): HeraldError {
  return new MessageRejectedError(
    "INVALID",
    `message ${JSON.stringify(id)} cannot be stored: ${reason}. Fix: build messages with createMessage()`,
    {
      details: { id },
    },
  );
}

/**
 * Fail-stop state: the first real I/O error stops the outbox for good (until a restart recovers from the
 * WAL), so nothing is acknowledged that may not be on disk. Listeners hear about it exactly once.
 */
export class FailStop {
  private failure: HeraldError | undefined;
  private readonly listeners: Array<(err: HeraldError) => void> = [];

  constructor(private readonly path: string) {}

  get error(): HeraldError | undefined {
    return this.failure;
  }

  /** Enter fail-stop (idempotent: the first error stays the reason) and return the error to answer with. */
  stop(err: unknown, during: string): HeraldError {
    if (this.failure !== undefined) return this.failure;
    const failure = failStopError(this.path, during, err);
    this.failure = failure;
    for (const listener of this.listeners) {
      try {
        listener(failure);
      } catch {
        // A listener's own bug must not hide the storage failure from the others.
      }
    }
    return failure;
  }

  /** SQLITE_FULL and SQLITE_BUSY are clean rollbacks; anything else (I/O, fsync, corruption) is fail-stop. */
  classify(err: unknown, during: string): HeraldError {
    const code = errorCode(err);
    if (code === "SQLITE_FULL") return storageFullError(this.path, err);
    if (code.startsWith("SQLITE_BUSY")) return busyError(this.path, err);
    return this.stop(err, during);
  }

  /** Called once when the outbox enters fail-stop (immediately if it already has). */
  onFail(listener: (err: HeraldError) => void): void {
    this.listeners.push(listener);
    if (this.failure !== undefined) listener(this.failure);
  }
}

/** Why one more row of `bytes` cannot be appended now, or undefined: the outbox's limits on pending rows. */
export function limitProblem(
  limits: { messages: number; bytes: number },
  counts: { pending: number; pendingBytes: number },
  id: string,
  bytes: number,
): HeraldError | undefined {
  // Not OUTBOX_FULL ("retry later"): it would not fit in an empty outbox either.
  if (bytes > limits.bytes) return tooLargeForOutbox(id, bytes, limits.bytes);
  if (counts.pending + 1 > limits.messages)
    return outboxFullError("maxMessages", limits.messages, counts.pending);
  if (counts.pendingBytes + bytes > limits.bytes)
    return outboxFullError("maxBytes", limits.bytes, counts.pendingBytes);
  return undefined;
}
