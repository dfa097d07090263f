import { ProtocolError } from "../errors.js";
import { canonicalJson, isJsonObject, type JsonObject, pythonJson } from "./json.js";
import {
  DEFAULT_SCHEMA,
  DERIVED_FIELDS,
  decoderBodyLimit,
  type Headers,
  type Message,
  sentAtFromMillis,
  validateMessage,
} from "./message.js";

/**
 * fedmsg's wire format: two frames `[topic, envelope]`, the envelope being
 * `simplejson.dumps(d, sort_keys=True, separators=(',', ':'))` of
 * `{topic, msg, timestamp, msg_id, i, username[, crypto, signature, certificate][, seq_id]}`.
 *
 * Legacy-only fields travel in herald headers under `fedmsg.*` so that a message ingested from a
 * legacy publisher is re-emitted byte for byte.
 */
export const LEGACY_HEADER = {
  i: "fedmsg.i",
  timestamp: "fedmsg.timestamp",
  username: "fedmsg.username",
  crypto: "fedmsg.crypto",
  signature: "fedmsg.signature",
  certificate: "fedmsg.certificate",
  seqId: "fedmsg.seq_id",
  /** Top-level envelope fields fedmsg does not define, as canonical JSON of an object. */
  extra: "fedmsg.extra",
  /**
   * The envelope text as received, only when re-encoding would not reproduce it (`5.0`, integers past
   * 2^53, another JSON writer's spacing): the legacy encoder then sends it verbatim.
   */
  envelope: "fedmsg.envelope",
} as const;

/**
 * Larger envelopes are not kept verbatim: every header must also fit the AMQP header table (60 KiB,
 * wire/amqp-headers.ts), or the broker would refuse the message; they go out re-encoded.
 */
export const MAX_VERBATIM_ENVELOPE_BYTES = 32 * 1024;

const KNOWN_FIELDS = new Set([
  "topic",
  "msg",
  "timestamp",
  "msg_id",
  "i",
  "username",
  "crypto",
  "signature",
  "certificate",
  "seq_id",
]);
const OPTIONAL_STRING_FIELDS = [
  ["crypto", LEGACY_HEADER.crypto],
  ["signature", LEGACY_HEADER.signature],
  ["certificate", LEGACY_HEADER.certificate],
] as const;

const UUID_V7_ID = /^\d{4}-([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})$/;

/** The fedmsg envelope object for a message. `i` is the publishing socket's counter when not restored. */
export function toLegacyObject(msg: Message, i: number): JsonObject {
  const h = msg.headers;
  // In fedmsg's (sorted) key order, so that the encoder sorts only when optional fields are present.
  const obj: JsonObject = {
    i: numberHeader(h, LEGACY_HEADER.i) ?? i,
    msg: msg.body,
    msg_id: legacyMsgId(msg),
    timestamp: legacyTimestamp(msg),
    topic: msg.topic,
    username: stringHeader(h, LEGACY_HEADER.username) ?? msg.origin.user ?? "herald",
  };
  for (const [field, header] of OPTIONAL_STRING_FIELDS) {
    const v = stringHeader(h, header);
    if (v !== undefined) obj[field] = v;
  }
  const seqId = numberHeader(h, LEGACY_HEADER.seqId);
  if (seqId !== undefined) obj["seq_id"] = seqId;
  const extra = stringHeader(h, LEGACY_HEADER.extra);
  if (extra !== undefined) mergeExtra(obj, JSON.parse(extra) as JsonObject);
  return obj;
}

/**
 * The unknown fields an ingested envelope had, back in place. Admission refuses an extra that names a
 * derived field or `__proto__` (message.ts); skipped here too for rows stored before it did.
 */
function mergeExtra(obj: JsonObject, extra: JsonObject): void {
  for (const [k, v] of Object.entries(extra)) {
    if (DERIVED_FIELDS.has(k) || k === "__proto__") continue;
    obj[k] = v;
  }
}

/** herald ids become `<YEAR>-<id>` like fedmsg's; ids that came from fedmsg are kept as they were. */
export function legacyMsgId(msg: Message): string {
  if (/^\d{4}-/.test(msg.id)) return msg.id;
  return `${new Date(msg.sentAt).getUTCFullYear()}-${msg.id}`;
}

export function encodeLegacyFrames(msg: Message, i: number): [Buffer, Buffer] {
  return [Buffer.from(msg.topic, "utf8"), Buffer.from(legacyEnvelopeText(msg, i), "utf8")];
}

/** The envelope text of encodeLegacyFrames, for senders that take strings (the PUB sockets). */
export function legacyEnvelopeText(msg: Message, i: number): string {
  return verbatimEnvelope(msg) ?? pythonJson(toLegacyObject(msg, i));
}

/**
 * The envelope kept at decode (LEGACY_HEADER.envelope), if it says what the message says: any submitter
 * can set the header, so the text is sent only when its topic, msg_id, `msg` (compared parsed, so `5.0`
 * and big integers still go out as received) and timestamp are the message's own; otherwise the envelope
 * is re-encoded. Its other fields (i, username, signature...) are what the fedmsg.* headers, which the
 * submitter sets as well, would say. Only messages carrying the header pay.
 */
function verbatimEnvelope(msg: Message): string | undefined {
  const text = stringHeader(msg.headers, LEGACY_HEADER.envelope);
  if (text === undefined) return undefined;
  try {
    const env: unknown = JSON.parse(text);
    const same =
      isJsonObject(env) &&
      env["topic"] === msg.topic &&
      env["msg_id"] === legacyMsgId(msg) &&
      env["timestamp"] === legacyTimestamp(msg) &&
      isJsonObject(env["msg"]) &&
      canonicalJson(env["msg"]) === canonicalJson(msg.body);
    return same ? text : undefined;
  } catch {
    return undefined;
  }
}

/** fedmsg's timestamp of a message: as it came from fedmsg, else sentAt in whole seconds. */
function legacyTimestamp(msg: Message): number {
  return numberHeader(msg.headers, LEGACY_HEADER.timestamp) ?? Math.floor(Date.parse(msg.sentAt) / 1000);
}

export interface DecodedLegacy {
  message: Message;
  /** fedmsg's `i` as sent. */
  i: number | undefined;
}

/**
 * Decode the envelope frame of a fedmsg message. `defaults` supplies what fedmsg does not carry
 * (origin host and app, usually from the endpoint's service name). Without `maxBodyBytes`, bodies up to
 * the default limits.maxBodyBytes pass.
 */
export function decodeLegacyEnvelope(
  bytes: Buffer | Uint8Array,
  defaults: { host?: string; app?: string } = {},
  maxBodyBytes?: number,
): DecodedLegacy {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ProtocolError(`fedmsg envelope is not valid JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(raw)) throw new ProtocolError("fedmsg envelope must be a JSON object");
  const { topic, msg, msg_id: msgId, timestamp } = raw;
  if (typeof topic !== "string") throw new ProtocolError("fedmsg envelope field 'topic' must be a string");
  if (!isJsonObject(msg)) throw new ProtocolError("fedmsg envelope field 'msg' must be a JSON object");
  if (typeof msgId !== "string") throw new ProtocolError("fedmsg envelope field 'msg_id' must be a string");
  if (typeof timestamp !== "number")
    throw new ProtocolError("fedmsg envelope field 'timestamp' must be a number");
  const sentAt = sentAtFromMillis(timestamp * 1000);
  if (sentAt === undefined)
    throw new ProtocolError(
      `fedmsg envelope field 'timestamp' is out of range: ${timestamp} (seconds since 1970, years 0000-9999)`,
    );
  let headers: Headers;
  try {
    headers = legacyHeaders(raw);
  } catch (err) {
    // JSON.stringify of absurdly nested unknown fields overflows the stack.
    throw new ProtocolError(`fedmsg envelope has unencodable extra fields: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const v7 = UUID_V7_ID.exec(msgId);
  const message: Message = {
    id: v7 ? v7[1]! : msgId,
    topic,
    sentAt,
    schema: DEFAULT_SCHEMA,
    schemaVersion: 1,
    headers: v7 ? {} : headers,
    body: msg,
    origin: {
      host: defaults.host ?? "legacy",
      app: defaults.app ?? legacyApp(topic),
      pid: 0,
      ...(typeof raw["username"] === "string" ? { user: raw["username"] } : {}),
    },
  };
  const [limit, named] = decoderBodyLimit(maxBodyBytes, 1);
  try {
    validateMessage(message, limit, named);
  } catch (err) {
    throw new ProtocolError(`fedmsg envelope is invalid: ${(err as Error).message}`, { cause: err });
  }
  const i = typeof raw["i"] === "number" ? raw["i"] : undefined;
  if (!v7) keepIfNotReproduced(message, text, bytes.byteLength, i);
  return { message, i };
}

/**
 * Re-emitting an ingested message must give back the publisher's bytes: fedmsg subscribers that check
 * signatures re-serialise `msg`, and JSON.parse loses `5.0` -> 5 and digits past 2^53. Nearly every
 * envelope re-encodes to itself (one encode and one compare); the others keep their text.
 */
function keepIfNotReproduced(message: Message, text: string, bytes: number, i: number | undefined): void {
  let again: string;
  try {
    again = pythonJson(toLegacyObject(message, i ?? 0));
  } catch {
    again = "";
  }
  if (again !== text && bytes <= MAX_VERBATIM_ENVELOPE_BYTES) message.headers[LEGACY_HEADER.envelope] = text;
}

/**
 * fedmsg's modname of a topic: the word after `<topicPrefix>.<environment>.` (the prefix may have any
 * number of words); without a scheme, or for a topic outside it, the topic's third word.
 */
export function legacyApp(topic: string, scheme?: { topicPrefix: string; environment: string }): string {
  if (scheme) {
    const base = `${scheme.topicPrefix}.${scheme.environment}.`;
    const word = topic.startsWith(base) ? topic.slice(base.length).split(".", 1)[0] : undefined;
    if (word) return word;
  }
  return topic.split(".")[2] || "legacy";
}

function legacyHeaders(raw: JsonObject): Headers {
  const headers: Headers = { [LEGACY_HEADER.timestamp]: raw["timestamp"] as number };
  if (typeof raw["i"] === "number") headers[LEGACY_HEADER.i] = raw["i"];
  if (typeof raw["username"] === "string") headers[LEGACY_HEADER.username] = raw["username"];
  for (const [field, header] of OPTIONAL_STRING_FIELDS) {
    const v = raw[field];
    if (typeof v === "string") headers[header] = v;
  }
  if (typeof raw["seq_id"] === "number") headers[LEGACY_HEADER.seqId] = raw["seq_id"];
  const extra: JsonObject = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === "__proto__") continue; // would set extra's prototype; no fedmsg envelope has one
    if (
      !KNOWN_FIELDS.has(k) ||
      (k === "username" && typeof v !== "string") ||
      (k === "i" && typeof v !== "number")
    )
      extra[k] = v;
  }
  if (Object.keys(extra).length > 0) headers[LEGACY_HEADER.extra] = JSON.stringify(extra);
  return headers;
}

function numberHeader(h: Headers, key: string): number | undefined {
  const v = h[key];
  return typeof v === "number" ? v : undefined;
}

function stringHeader(h: Headers, key: string): string | undefined {
  const v = h[key];
  return typeof v === "string" ? v : undefined;
}
