import type { HeraldError } from "../errors.js";
import type { Message } from "../wire/message.js";

export interface OutboxOptions {
  /** Database file; parent directories are created with mode 0700. */
  path: string;
  /** `full` (default): an ack survives power loss. `normal`: survives a process crash only. */
  synchronous?: "full" | "normal";
  /** Pending (undelivered) messages before appends get OUTBOX_FULL. Default 1,000,000. */
  maxMessages?: number;
  /** Pending bytes (stored envelopes) before appends get OUTBOX_FULL. Default 1 GiB. */
  maxBytes?: number;
  /** Delivered rows are kept this long. Default 10 min. */
  retentionMs?: number;
  /** Ids are recognised as duplicates at least this long; rows are never pruned earlier. Default 10 min. */
  dedupWindowMs?: number;
  /** `PRAGMA max_page_count`, to provoke SQLITE_FULL in tests. */
  maxPageCount?: number;
  /** Failpoint spec (see failpoints.ts); default: the process-wide `HERALD_FAILPOINTS`. */
  failpoint?: string;
  /** How often the background prune runs. Default 30 s. */
  pruneIntervalMs?: number;
  /** Told when the wall clock went back and rows stamped ahead of it were restamped (see Outbox). */
  onClockBack?: (e: { aheadMs: number; rows: number }) => void;
  /**
   * Told when close() could not write its clean-close record (a full disk): nothing is lost, but the next
   * open takes the stop for a crash (a full check; ZeroMQ sinks resend their recent messages).
   */
  onCleanCloseFailed?: (why: string) => void;
}

export interface StoredMessage {
  seq: number;
  acceptedAt: number;
  message: Message;
  bytes: number;
}

export type AppendResult =
  | { ok: true; id: string; seq: number; acceptedAt: number; duplicate: boolean }
  | { ok: false; id: string; error: HeraldError };

export interface OutboxStats {
  headSeq: number;
  totalRows: number;
  pendingMessages: number;
  pendingBytes: number;
  oldestPendingAt: number | undefined;
  sinks: Record<string, { cursor: number; lag: number }>;
  /** Committed append transactions since open (group commit makes this smaller than the append count). */
  commits: number;
  /** Rows restamped because the wall clock went back after they were stamped (since open). */
  restampedRows: number;
  failed?: string;
}
