import { HeraldError } from "../errors.js";
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
  return decodeAt(row.seq, row.envelope, path);
}

function decodeAt(seq: number, envelope: Buffer, path: string): Message {
  try {
    // Not remembered for encodeStampedFrames: that cache holds the newest live messages, and rows read
    // during a backlog drain would only push them out (remembering them once doubled a drain's memory).
    // The row's own bytes ride on the message instead, for sinks that send the stored form as it is.
    return decodeStoredEnvelope(envelope);
  } catch (err) {
    // quick_check sees only SQLite's own structure, so this row is not quarantined at the next open.
    throw storageError(
      `outbox row seq ${seq} in ${path} cannot be decoded (${(err as Error).message}): the file is ` +
        `damaged. Each sink passes over this row (logged, counted as skipped) and delivers the others. ` +
        `Fix: check the disk (dmesg, 'sqlite3 ${path} "PRAGMA integrity_check"')`,
      err,
      path,
      { seq, undecodable: true },
    );
  }
}

/** The seq of the row a read found undecodable (see decodeRow), or undefined for any other error. */
export function undecodableSeq(err: unknown): number | undefined {
  if (!(err instanceof HeraldError) || err.details["undecodable"] !== true) return undefined;
  const seq = err.details["seq"];
  return typeof seq === "number" ? seq : undefined;
}

/**
 * Decode rows as they are read from disk, up to `maxBytes` (at least one row). Given an iterator, at most
 * one row past the cap is loaded: a page of 1 MiB messages once loaded 500 envelopes to return 4. An
 * undecodable row ends the page before it, and is thrown when it comes first: the rows before it are
 * delivered, then the sink passes over it.
 */
export function readRows(rows: Iterable<MessageRow>, maxBytes: number, path: string): StoredMessage[] {
  const out: StoredMessage[] = [];
  let total = 0;
  for (const row of rows) {
    const bytes = row[2];
    if (out.length > 0 && total + bytes > maxBytes) break;
    let message: Message;
    try {
      message = decodeAt(row[0], row[3], path);
    } catch (err) {
      if (out.length > 0) break;
      throw err;
    }
    total += bytes;
    out.push({ seq: row[0], acceptedAt: row[1], bytes, message });
  }
  return out;
}
