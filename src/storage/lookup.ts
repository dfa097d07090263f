import { SINK_JOINED_PREFIX, type Statements } from "./statements.js";
import type { StoredMessage } from "./types.js";

/** What the outbox knows of one message id, for `herald trace`. */
export interface OutboxTrace {
  /** The stored message, or undefined: never accepted by this broker, or pruned since. */
  stored: StoredMessage | undefined;
  /** The oldest row still stored (undefined when the outbox is empty): what a pruned message was older than. */
  oldest: { seq: number; acceptedAt: number } | undefined;
  /** How long delivered rows are kept (max of outbox.retention and outbox.dedupWindow), in ms. */
  keptForMs: number;
  /**
   * Per sink, the head seq when it was first registered: messages up to it were never meant for it (a
   * new sink starts at the head). Absent for sinks registered before herald recorded it.
   */
  joined: Record<string, number>;
}

/** Look `id` up by the dedup index; the row itself comes through `readOne` (the recent window first). */
export function traceId(
  sql: Statements,
  id: string,
  readOne: (afterSeq: number) => StoredMessage | undefined,
  keptForMs: number,
): OutboxTrace {
  const found = sql.findId.get(id);
  const row = found === undefined ? undefined : readOne(found.seq - 1);
  const first = sql.stampAt.get(0);
  const joined: Record<string, number> = {};
  for (const r of sql.sinksJoined.all()) {
    const seq = Number(r.value);
    if (Number.isSafeInteger(seq)) joined[r.key.slice(SINK_JOINED_PREFIX.length)] = seq;
  }
  return {
    // A prune between the two reads would hand back the next row: only the row with that seq counts.
    stored: row !== undefined && row.seq === found?.seq ? row : undefined,
    oldest: first === undefined ? undefined : { seq: first.seq, acceptedAt: first.accepted_at },
    keptForMs,
    joined,
  };
}
