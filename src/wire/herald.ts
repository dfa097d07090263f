import { ProtocolError } from "../errors.js";
import { canonicalJson, isJsonObject, type JsonObject } from "./json.js";
import { decoderBodyLimit, type Headers, type Message, validateMessage } from "./message.js";

/**
 * herald's own envelope on the wire: two ZeroMQ frames `[topic, envelope]`, the envelope being the
 * canonical JSON (RFC 8785) of the object below with `v: 1`. See docs/wire-format.md.
 */
export const HERALD_WIRE_VERSION = 1;

interface WireEnvelope {
  v: number;
  id: string;
  topic: string;
  sent_at: string;
  schema: string;
  schema_version: number;
  headers: Headers;
  body: JsonObject;
  origin: { host: string; app: string; pid: number; user?: string };
  seq?: number;
  stream?: string;
  via?: string[];
}

/**
 * The envelope object, its keys inserted in canonical (JCS) order: the encoder then finds them in order and
 * sorts nothing. Every message is encoded at least twice (stored, published), and those sorts were among the
 * broker's largest sources of garbage per message.
 */
export function toWireObject(msg: Message): WireEnvelope {
  const o = msg.origin;
  const origin: WireEnvelope["origin"] = { app: o.app, host: o.host, pid: o.pid };
  if (o.user !== undefined) origin.user = o.user;
  const env: Partial<WireEnvelope> = {
    body: msg.body,
    headers: msg.headers,
    id: msg.id,
    origin,
    schema: msg.schema,
    schema_version: msg.schemaVersion,
    sent_at: msg.sentAt,
  };
  if (msg.seq !== undefined) env.seq = msg.seq;
  if (msg.stream !== undefined) env.stream = msg.stream;
  env.topic = msg.topic;
  env.v = HERALD_WIRE_VERSION;
  if (msg.via !== undefined && msg.via.length > 0) env.via = msg.via;
  return env as WireEnvelope;
}

/** The canonical bytes of a message; equal messages always give equal bytes. */
export function encodeEnvelope(msg: Message): Buffer {
  return Buffer.from(canonicalJson(toWireObject(msg)), "utf8");
}

export function encodeHeraldFrames(msg: Message): [Buffer, Buffer] {
  return [Buffer.from(msg.topic, "utf8"), encodeEnvelope(msg)];
}

/**
 * Envelopes without seq/stream (the outbox's stored form) of the newest stored messages. The outbox
 * encodes every message once to store it; a PUB socket then stamps its own seq/stream into that text
 * instead of encoding the whole message again. Bounded maps, not a WeakMap: a WeakMap entry lives until a
 * major GC collects its key, and filling a 1M backlog took the broker's RSS from 140 to 290 MB with one.
 * Text, not Buffers: small Buffers are slices of shared 8 KiB slabs, which they would keep alive.
 *
 * Two generations rather than one map trimmed from the front: deleting a Map's oldest entry leaves a hole
 * that every later `keys().next()` walks over until V8 rehashes, which cost 3 us per stored message.
 */
let newEnvelopes = new Map<Message, string>();
let oldEnvelopes = new Map<Message, string>();
/**
 * Messages per generation: half the outbox's in-memory window (RecentMessages, 4,096), so the two maps
 * together never keep a message alive after the window dropped it. With 4,096 per generation they held up
 * to 8,192, and the extra messages died in the old generation: filling a 1M backlog peaked 4-11 MB higher,
 * and the AMQP load ran 1.03x slower with 6% more broker CPU per message (bench/ab.mjs).
 */
export const ENVELOPE_GENERATION = 2048;
/**
 * Envelope text per generation, as RecentMessages holds 8 MiB at most: by count alone, 4,096 kept 1 MiB
 * messages (their text and the messages it keeps alive) held the broker at 1.2 GB after a flood of big
 * requests had long been answered.
 */
const ENVELOPE_GENERATION_CHARS = 4 << 20;
let newEnvelopeChars = 0;

/** How many stored envelopes are kept (one to two generations once that many were stored; for tests). */
export function keptEnvelopeCount(): number {
  return newEnvelopes.size + oldEnvelopes.size;
}

/** The stored form's bytes (no seq/stream), remembered for encodeStampedFrames. */
export function encodeBaseEnvelope(msg: Message): Buffer {
  const bare = msg.seq === undefined && msg.stream === undefined;
  const text = canonicalJson(toWireObject(bare ? msg : { ...msg, seq: undefined, stream: undefined }));
  if (newEnvelopes.size >= ENVELOPE_GENERATION || newEnvelopeChars >= ENVELOPE_GENERATION_CHARS) {
    oldEnvelopes = newEnvelopes;
    newEnvelopes = new Map();
    newEnvelopeChars = 0;
  }
  newEnvelopes.set(msg, text);
  newEnvelopeChars += text.length;
  return Buffer.from(text, "utf8");
}

/** The stored-form text encodeBaseEnvelope remembered for `msg`, if it is still kept. */
function rememberedText(msg: Message): string | undefined {
  return newEnvelopes.get(msg) ?? oldEnvelopes.get(msg);
}

/** The frames of `msg` stamped with a socket's seq/stream: equal to encodeHeraldFrames({...msg, seq, stream}). */
export function encodeStampedFrames(msg: Message, seq: number, stream: string): [Buffer, Buffer] {
  return [Buffer.from(msg.topic, "utf8"), Buffer.from(stampedEnvelopeText(msg, seq, stream), "utf8")];
}

/** The envelope text of encodeStampedFrames, for senders that take strings (the PUB sockets). */
export function stampedEnvelopeText(msg: Message, seq: number, stream: string): string {
  // A message read back from disk has no remembered text but carries the bytes it was stored with
  // (a PUB socket catching up): their text is the same envelope, without encoding the message again.
  const base = rememberedText(msg) ?? storedText(msg);
  const spliced = base === undefined ? undefined : spliceStamp(base, msg, seq, stream);
  return spliced ?? canonicalJson(toWireObject({ ...msg, seq, stream }));
}

/**
 * In canonical key order `seq` and `stream` sit between `sent_at` and `topic`, and everything from `topic`
 * on is known: insert them there. Returns undefined (encode afresh) if the text does not end as expected.
 */
function spliceStamp(base: string, msg: Message, seq: number, stream: string): string | undefined {
  const tail = envelopeTail(msg);
  if (base.length <= tail.length || !base.endsWith(tail)) return undefined;
  const stamp = `,"seq":${canonicalJson(seq)},"stream":${JSON.stringify(stream)}`;
  return base.slice(0, base.length - tail.length) + stamp + tail;
}

/** What every envelope of `msg` ends with, from `topic` on (the keys after seq/stream in canonical order). */
function envelopeTail(msg: Message): string {
  const via = msg.via !== undefined && msg.via.length > 0 ? `,"via":${canonicalJson(msg.via)}` : "";
  return `,"topic":${JSON.stringify(msg.topic)},"v":${HERALD_WIRE_VERSION}${via}}`;
}

/**
 * Decode envelope bytes, throwing a ProtocolError that names the field at fault. Without `maxBodyBytes`,
 * bodies up to twice the default limits.maxBodyBytes pass.
 */
export function decodeEnvelope(bytes: Buffer | Uint8Array, maxBodyBytes?: number): Message {
  const msg = parseEnvelope(bytes);
  const [limit, named] = decoderBodyLimit(maxBodyBytes, 2);
  try {
    validateMessage(msg, limit, named);
  } catch (err) {
    throw new ProtocolError(`herald envelope is invalid: ${(err as Error).message}`, { cause: err });
  }
  return msg;
}

/** The bytes a message was stored with, kept on messages read back from the outbox. */
const STORED_BYTES = Symbol("herald.storedEnvelope");

/**
 * Decode an envelope the outbox stored: the same structural checks as decodeEnvelope, but not the message
 * rules (topic, id, body size), which every message passed before it was stored (re-checking stringified
 * each body again, 4% of the broker's CPU while an AMQP sink drained from disk). The bytes stay attached,
 * hidden, so that storedEnvelopeBytes can hand them to a sink instead of encoding the message again.
 */
export function decodeStoredEnvelope(bytes: Buffer): Message {
  const msg = parseEnvelope(bytes);
  Object.defineProperty(msg, STORED_BYTES, { value: bytes });
  return msg;
}

/**
 * The canonical bytes of a message without seq/stream (equal to encodeEnvelope of it) when they are at
 * hand: the outbox's own bytes for a message read back from disk, or the text it encoded when storing a
 * live one. Undefined otherwise, or for a message that carries a seq or stream.
 */
export function storedEnvelopeBytes(msg: Message): Buffer | undefined {
  if (msg.seq !== undefined || msg.stream !== undefined) return undefined;
  const own = (msg as { [STORED_BYTES]?: Buffer })[STORED_BYTES];
  if (own !== undefined) return own;
  const text = rememberedText(msg);
  // The same guard as spliceStamp's: a message changed after it was stored is encoded afresh.
  if (text === undefined || !text.endsWith(envelopeTail(msg))) return undefined;
  return Buffer.from(text, "utf8");
}

/** The stored bytes of a message read back from disk, as text (undefined for any other message). */
function storedText(msg: Message): string | undefined {
  return (msg as { [STORED_BYTES]?: Buffer })[STORED_BYTES]?.toString("utf8");
}

/** JSON and field types only: a Message whose every field has the type the type says. */
function parseEnvelope(bytes: Buffer | Uint8Array): Message {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ProtocolError(`herald envelope is not valid JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(raw)) throw new ProtocolError("herald envelope must be a JSON object");
  if (raw["v"] !== HERALD_WIRE_VERSION)
    throw new ProtocolError(
      `herald envelope version ${JSON.stringify(raw["v"])} is not supported (expected 1)`,
    );
  const origin = raw["origin"];
  if (!isJsonObject(origin)) throw new ProtocolError("herald envelope field 'origin' must be an object");
  const msg: Message = {
    id: field(raw, "id", "string"),
    topic: field(raw, "topic", "string"),
    sentAt: field(raw, "sent_at", "string"),
    schema: field(raw, "schema", "string"),
    schemaVersion: field(raw, "schema_version", "number"),
    headers: objectField(raw, "headers") as Headers,
    body: objectField(raw, "body"),
    origin: {
      host: field(origin, "host", "string"),
      app: field(origin, "app", "string"),
      pid: field(origin, "pid", "number"),
    },
  };
  if (typeof origin["user"] === "string") msg.origin.user = origin["user"];
  if (raw["seq"] !== undefined) msg.seq = field(raw, "seq", "number");
  if (raw["stream"] !== undefined) msg.stream = field(raw, "stream", "string");
  const via = raw["via"];
  if (via !== undefined) {
    if (!Array.isArray(via) || !via.every((v) => typeof v === "string"))
      throw new ProtocolError("herald envelope field 'via' must be a list of broker names");
    msg.via = via as string[];
  }
  return msg;
}

function field<T extends "string" | "number">(
  obj: JsonObject,
  key: string,
  type: T,
): T extends "string" ? string : number {
  const v = obj[key];
  if (typeof v !== type) throw new ProtocolError(`herald envelope field '${key}' must be a ${type}`);
  return v as T extends "string" ? string : number;
}

function objectField(obj: JsonObject, key: string): JsonObject {
  const v = obj[key];
  if (!isJsonObject(v)) throw new ProtocolError(`herald envelope field '${key}' must be an object`);
  return v;
}

/** CloudEvents 1.0 attributes for a message (structured JSON mode). */
export function toCloudEvent(msg: Message): Record<string, unknown> {
  return {
    specversion: "1.0",
    id: msg.id,
    source: `herald://${msg.origin.host}/${msg.origin.app}`,
    type: msg.topic,
    time: msg.sentAt,
    dataschema: `herald:${msg.schema}/${msg.schemaVersion}`,
    datacontenttype: "application/json",
    data: msg.body,
    ...Object.fromEntries(Object.entries(msg.headers).map(([k, v]) => [cloudEventExtensionName(k), v])),
  };
}

/** CloudEvents extension names are lowercase alphanumerics: `fedmsg.i` becomes `heraldfedmsgi`. */
function cloudEventExtensionName(header: string): string {
  return `herald${header.toLowerCase().replace(/[^a-z0-9]/g, "")}`;
}
