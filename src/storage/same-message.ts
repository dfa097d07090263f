import { HOP_HEADER_PREFIX, SIG_HEADER, SIGNER_HEADER, VOUCHED_HEADER } from "../security/sign.js";
import { decodeStoredEnvelope } from "../wire/herald.js";
import { canonicalJson } from "../wire/json.js";
import { DEFAULT_SCHEMA, type Headers, type Message } from "../wire/message.js";
import { idConflictError } from "./outbox-errors.js";
import type { Statements } from "./statements.js";
import type { AppendResult } from "./types.js";

/**
 * When a second message with an id already stored is "the same message" (a duplicate, answered ok) and
 * when it is another message claiming that id (refused ID_CONFLICT). Dedup by id alone let whoever stored
 * an id first suppress the genuine message while its publisher was told "ok".
 *
 * Compared: topic, schema, schemaVersion, the body (canonically) and the headers except those below.
 * Not compared: `sentAt` (an app that publishes again under its own fixed id, an idempotency key, or a
 * raw client that leaves `sent_at` to the broker and retries, sends the same message at another time;
 * a different time suppresses nothing), `origin` (the shim fills host/app from the endpoint it read, so one legacy message
 * read on two paths differs there), `via` (grows on every forward, not signed), and seq/stream (never
 * stored). Only duplicates pay for this: the outbox calls it after its id lookup found a row.
 */

/**
 * Headers that say who signed, vouched for or carried a message, not what it says: the same message
 * signed by two shims, ingested from two endpoints, or redelivered by RabbitMQ differs in them.
 * `herald.ingested-*` are the shim's (src/shim/ingest.ts; not imported: storage must not load the shim).
 * `x-delivery-count`, `x-death`, `x-received-from`, `x-{first,last}-death-*` are what RabbitMQ adds to a
 * redelivered, dead-lettered or federated delivery that source ingest keeps as headers.
 */
const CARRIER_HEADERS: ReadonlySet<string> = new Set([
  // The text a legacy envelope arrived as, kept only when re-encoding would not give it back: one copy
  // read re-serialised by a relay has it and the other not. It records form; the encoder checks it
  // says what the message says (wire/legacy.ts).
  "fedmsg.envelope",
  SIGNER_HEADER,
  SIG_HEADER,
  VOUCHED_HEADER,
  "herald.ingested-by",
  "herald.ingested-from",
  "x-delivery-count",
  "x-death",
  "x-received-from",
]);
const CARRIER_PREFIXES = [HOP_HEADER_PREFIX, "x-first-death-", "x-last-death-"] as const;

function isCarrierHeader(name: string): boolean {
  return CARRIER_HEADERS.has(name) || CARRIER_PREFIXES.some((p) => name.startsWith(p));
}

/**
 * A message that carries no more than fedmsg does: the default schema and no headers but carrying ones.
 * That is what a herald message becomes once it went through fedmsg (a legacy `msg_id` `<YEAR>-<UUIDv7>`
 * is decoded to the herald id with no fedmsg.* headers: wire/legacy.ts), whether a shim read it back or a
 * cassette recorded on a legacy socket is replayed: sentAt's milliseconds, the schema and the headers are
 * lost on the way. Such a copy is the same message when its topic and body are: it can claim nothing else.
 */
function carriesOnlyWhatFedmsgDoes(m: Message): boolean {
  if (m.schema !== DEFAULT_SCHEMA || m.schemaVersion !== 1) return false;
  for (const name in m.headers) if (!isCarrierHeader(name)) return false;
  return true;
}
/**
 * What makes `incoming` another message than `stored` (same id), in words for the ID_CONFLICT error;
 * undefined when it is the same message. Names the field and the topic, never header or body values.
 */
export function contentDifference(stored: Message, incoming: Message): string | undefined {
  if (incoming.topic !== stored.topic) return `topic ${incoming.topic}, stored ${stored.topic}`;
  const on = `topic ${incoming.topic}`;
  const bodyDiffers = () => canonicalJson(incoming.body) !== canonicalJson(stored.body);
  if (carriesOnlyWhatFedmsgDoes(incoming) || carriesOnlyWhatFedmsgDoes(stored))
    return bodyDiffers() ? `body differs; ${on}` : undefined;
  if (incoming.schema !== stored.schema || incoming.schemaVersion !== stored.schemaVersion)
    return `schema ${incoming.schema} v${incoming.schemaVersion}, stored ${stored.schema} v${stored.schemaVersion}; ${on}`;
  const header = headerDifference(stored.headers, incoming.headers);
  if (header !== undefined) return `header ${JSON.stringify(header)} differs; ${on}`;
  return bodyDiffers() ? `body differs; ${on}` : undefined;
}

/** The first compared header whose value differs or that only one side has; undefined when none. */
function headerDifference(stored: Headers, incoming: Headers): string | undefined {
  for (const [name, value] of Object.entries(incoming)) {
    if (isCarrierHeader(name)) continue;
    if (!Object.hasOwn(stored, name) || !sameHeader(name, stored[name], value)) return name;
  }
  for (const name of Object.keys(stored)) {
    if (!isCarrierHeader(name) && !Object.hasOwn(incoming, name)) return name;
  }
  return undefined;
}

/** `fedmsg.extra` holds JSON text: the same fields re-serialised by a relay (spacing, order) are the same. */
function sameHeader(name: string, a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (name !== "fedmsg.extra" || typeof a !== "string" || typeof b !== "string") return false;
  try {
    return canonicalJson(JSON.parse(a)) === canonicalJson(JSON.parse(b));
  } catch {
    return false;
  }
}

type At = { seq: number; acceptedAt: number };

function duplicate(id: string, at: At): AppendResult {
  return { ok: true, id, seq: at.seq, acceptedAt: at.acceptedAt, duplicate: true };
}

/** The answer for `incoming` whose id `stored` already holds (at `at`): a duplicate, or ID_CONFLICT. */
export function sameOrConflict(stored: Message, incoming: Message, id: string, at: At): AppendResult {
  const difference = contentDifference(stored, incoming);
  if (difference === undefined) return duplicate(id, at);
  return { ok: false, id, error: idConflictError(id, difference, at.seq) };
}

/**
 * The answer for a message whose id the row at `found` holds. Identical bytes (a client's retry, the
 * usual duplicate) need no decode; otherwise the stored message is decoded and compared.
 */
export function againStored(
  sql: Statements,
  prepared: { id: string; envelope: Buffer },
  incoming: Message,
  found: { seq: number; accepted_at: number },
): AppendResult {
  const id = prepared.id;
  const at = { seq: found.seq, acceptedAt: found.accepted_at };
  const row = sql.envelopeAt.get(found.seq);
  if (row === undefined || row.envelope.equals(prepared.envelope)) return duplicate(id, at);
  let stored: Message;
  try {
    stored = decodeStoredEnvelope(row.envelope);
  } catch {
    // A damaged row (each sink passes it over, loudly: codec.ts) cannot be compared. Answered as before
    // this check: the id is taken either way, and refusing would name a conflict nobody can see.
    return duplicate(id, at);
  }
  return sameOrConflict(stored, incoming, id, at);
}
