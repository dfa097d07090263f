import type { HeraldError } from "../errors.js";
import { decodeStoredEnvelope, encodeBaseEnvelope } from "../wire/herald.js";
import type { Message } from "../wire/message.js";
import { storageError } from "./db.js";
import { invalidForOutbox } from "./outbox-errors.js";
import type { MessageRow } from "./statements.js";
import type { StoredMessage } from "./types.js";

export type Prepared = { id: string; envelope: Buffer } | { id: string; error: HeraldError };

/** Encode outside the transaction; a malformed message is rejected alone, never fail-stops the outbox. */
export function prepare(msg: Message): Prepared {
  const id: unknown = msg?.id;
  if (typeof id !== "string" || id.length === 0)
    return { id: String(id), error: invalidForOutbox(String(id), "it has no id") };
  try {
    // seq/stream belong to one publishing socket, not to the stored message.
    return { id, envelope: encodeBaseEnvelope(msg) };
  } catch (err) {
    return { id, error: invalidForOutbox(id, (err as Error).message) };
  }
}

export function decodeRow(row: { seq: number; envelope: Buffer }, path: string): Message {
  try {
    // Not remembered for encodeStampedFrames: that cache holds the newest live messages, and rows read
    // during a backlog drain would only push them out (remembering them once doubled a drain's memory).
    // The row's own bytes ride on the message instead, for sinks that send the stored form as it is.
    return decodeStoredEnvelope(row.envelope);
  } catch (err) {
    throw storageError(
      `outbox row seq ${row.seq} in ${path} cannot be decoded (${(err as Error).message}): the file ` +
        `is damaged. Fix: stop herald, move the file aside and restart (see 'herald status')`,
      err,
      path,
      { seq: row.seq },
    );
  }
}

/** Decode rows read from disk, up to `maxBytes` (at least one row). */
export function readRows(rows: Iterable<MessageRow>, maxBytes: number, path: string): StoredMessage[] {
  const out: StoredMessage[] = [];
  let total = 0;
  for (const row of rows) {
    if (out.length > 0 && total + row.bytes > maxBytes) break;
    total += row.bytes;
    out.push({ seq: row.seq, acceptedAt: row.accepted_at, bytes: row.bytes, message: decodeRow(row, path) });
  }
  return out;
}
