import type Database from "better-sqlite3";

export interface Agg {
  n: number;
  b: number;
}

/** A stored row as read for delivery: an array rather than an object (see `page`). */
export type MessageRow = [seq: number, acceptedAt: number, bytes: number, envelope: Buffer];

type S<P extends unknown[], R = unknown> = Database.Statement<P, R>;

export interface Statements {
  findId: S<[string], { seq: number; accepted_at: number }>;
  envelopeAt: S<[number], { envelope: Buffer }>;
  insert: S<[number, string, number, number, Buffer]>;
  setHead: S<[string]>;
  getHead: S<[], { value: string }>;
  getMeta: S<[string], { value: string }>;
  setMeta: S<[string, string]>;
  lastRow: S<[], { seq: number; accepted_at: number }>;
  countRows: S<[], { n: number }>;
  minSeq: S<[], { s: number | null }>;
  aggAfter: S<[number], Agg>;
  aggRange: S<[number, number], Agg>;
  page: S<[number, number], MessageRow>;
  oldestAfter: S<[number], { accepted_at: number }>;
  firstYoung: S<[number, number], { seq: number }>;
  deleteUpTo: S<[number]>;
  stampAt: S<[number], { seq: number; accepted_at: number }>;
  restampFrom: S<[number, number]>;
  cursors: S<[], { sink: string; seq: number }>;
  insertCursor: S<[string, number]>;
  saveCursor: S<[string, number]>;
  deleteCursor: S<[string]>;
  sinkStates: S<[], { key: string; value: string }>;
  saveSinkState: S<[string, string]>;
  deleteSinkState: S<[string]>;
  sinksJoined: S<[], { key: string; value: string }>;
}

/** The meta key holding a sink's own state (see SinkCursors.advance). */
export const SINK_STATE_PREFIX = "sink_state:";
/** The meta key holding the head seq when a sink was first registered (`herald trace`: older messages never go to it). */
export const SINK_JOINED_PREFIX = "sink_joined:";
/** The meta key holding a sink's last passed-over messages, `[[seq, why], ...]` (`herald trace`). */
export const SINK_SKIPPED_PREFIX = "sink_skipped:";

/** Every SQL statement the outbox runs, prepared once. All of them are index (primary key) lookups or ranges. */
export function prepareStatements(db: Database.Database): Statements {
  return {
    findId: db.prepare<[string], { seq: number; accepted_at: number }>(
      "SELECT seq, accepted_at FROM messages WHERE id = ?",
    ),
    // Only a duplicate id reads its row's envelope (to tell a resend from another message: same-message.ts).
    envelopeAt: db.prepare<[number], { envelope: Buffer }>("SELECT envelope FROM messages WHERE seq = ?"),
    insert: db.prepare<[number, string, number, number, Buffer]>(
      "INSERT INTO messages (seq, id, accepted_at, bytes, envelope) VALUES (?, ?, ?, ?, ?)",
    ),
    setHead: db.prepare<[string]>("UPDATE meta SET value = ? WHERE key = 'head_seq'"),
    getHead: db.prepare<[], { value: string }>("SELECT value FROM meta WHERE key = 'head_seq'"),
    getMeta: db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE key = ?"),
    setMeta: db.prepare<[string, string]>("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"),
    lastRow: db.prepare<[], { seq: number; accepted_at: number }>(
      "SELECT seq, accepted_at FROM messages ORDER BY seq DESC LIMIT 1",
    ),
    countRows: db.prepare<[], { n: number }>("SELECT count(*) AS n FROM messages"),
    minSeq: db.prepare<[], { s: number | null }>("SELECT min(seq) AS s FROM messages"),
    // count/sum over a seq range (a primary-key range scan that stops at the range end).
    aggAfter: db.prepare<[number], Agg>(
      "SELECT count(*) AS n, total(bytes) AS b FROM messages WHERE seq > ?",
    ),
    aggRange: db.prepare<[number, number], Agg>(
      "SELECT count(*) AS n, total(bytes) AS b FROM messages WHERE seq > ? AND seq <= ?",
    ),
    // Raw (arrays): read row by row with iterate() (so rows past the byte cap are never loaded), it costs
    // what all() with objects did (100k small rows: 6.5 vs 6.6 us per row read and decoded).
    page: db
      .prepare<[number, number], MessageRow>(
        "SELECT seq, accepted_at, bytes, envelope FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
      )
      .raw(true),
    oldestAfter: db.prepare<[number], { accepted_at: number }>(
      "SELECT accepted_at FROM messages WHERE seq > ? ORDER BY seq LIMIT 1",
    ),
    // accepted_at is non-decreasing in seq, so walking from the oldest row stops at the first young one.
    firstYoung: db.prepare<[number, number], { seq: number }>(
      "SELECT seq FROM messages WHERE seq <= ? AND accepted_at >= ? ORDER BY seq LIMIT 1",
    ),
    deleteUpTo: db.prepare<[number]>("DELETE FROM messages WHERE seq <= ?"),
    stampAt: db.prepare<[number], { seq: number; accepted_at: number }>(
      "SELECT seq, accepted_at FROM messages WHERE seq >= ? ORDER BY seq LIMIT 1",
    ),
    restampFrom: db.prepare<[number, number]>("UPDATE messages SET accepted_at = ? WHERE seq >= ?"),
    cursors: db.prepare<[], { sink: string; seq: number }>("SELECT sink, seq FROM cursors"),
    insertCursor: db.prepare<[string, number]>("INSERT INTO cursors (sink, seq) VALUES (?, ?)"),
    // Monotonic even in SQL: a stale write can never move a persisted cursor back.
    saveCursor: db.prepare<[string, number]>(
      "INSERT INTO cursors (sink, seq) VALUES (?, ?) ON CONFLICT (sink) DO UPDATE SET seq = max(seq, excluded.seq)",
    ),
    deleteCursor: db.prepare<[string]>("DELETE FROM cursors WHERE sink = ?"),
    // Kept in meta (no new table, so schema version 1 stays): an older herald ignores these keys.
    sinkStates: db.prepare<[], { key: string; value: string }>(
      `SELECT key, value FROM meta WHERE substr(key, 1, ${SINK_STATE_PREFIX.length}) = '${SINK_STATE_PREFIX}'`,
    ),
    saveSinkState: db.prepare<[string, string]>("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"),
    deleteSinkState: db.prepare<[string]>("DELETE FROM meta WHERE key = ?"),
    sinksJoined: db.prepare<[], { key: string; value: string }>(
      `SELECT key, value FROM meta WHERE substr(key, 1, ${SINK_JOINED_PREFIX.length}) = '${SINK_JOINED_PREFIX}'`,
    ),
  };
}
