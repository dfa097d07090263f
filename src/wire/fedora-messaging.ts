import { createHash } from "node:crypto";
import { ProtocolError, rejected, unencodable } from "../errors.js";
import { setOwn } from "../util/own.js";
import { FM_CONTENT_TYPE, formatOfContentType, HERALD_CONTENT_TYPE } from "./content-type.js";
import { decodeEnvelope, encodeEnvelope, storedEnvelopeBytes } from "./herald.js";
import { isJsonObject, type JsonObject, referenceCanonicalJson } from "./json.js";
import { FALLBACK, type ReadyRules, ready } from "./json-ready.js";
import {
  DEFAULT_SCHEMA,
  decoderBodyLimit,
  type Headers,
  type HeaderValue,
  ID_RE,
  type Message,
  sentAtFromMillis,
  validateMessage,
} from "./message.js";
import { MAX_TOPIC_BYTES } from "./topic.js";

/**
 * The two AMQP wire formats herald speaks (docs/amqp.md):
 * - `herald`: content = the canonical herald envelope (`encodeEnvelope`), content type
 *   `application/vnd.herald.envelope+json`; nothing else is needed to rebuild the message.
 * - `fedora-messaging`: exactly what fedora-messaging 3.x publishes (JSON body, `fedora_messaging_*`
 *   and `sent-at` headers), plus `herald_*` headers that fedora-messaging consumers ignore and that let
 *   herald rebuild the original message losslessly.
 * Pure functions: no I/O, no amqplib import.
 */
export { FM_CONTENT_TYPE, HERALD_CONTENT_TYPE };
export const DEFAULT_SEVERITY = 20;

export type AmqpFormat = "herald" | "fedora-messaging";

/** Header table values as they travel through amqplib (numbers may carry an explicit type tag). */
export type AmqpHeaderValue = HeaderValue | { "!": "double"; value: number };

export interface AmqpPublishProperties {
  contentType: string;
  contentEncoding?: string;
  deliveryMode: 2;
  messageId: string;
  priority?: number;
  headers: Record<string, AmqpHeaderValue>;
}

export interface AmqpPublish {
  routingKey: string;
  content: Buffer;
  properties: AmqpPublishProperties;
}

/** What a consumer received, in the shape amqplib gives it (only the fields we read). */
export interface AmqpIncoming {
  routingKey: string;
  content: Buffer;
  properties: {
    contentType?: unknown;
    messageId?: unknown;
    priority?: unknown;
    timestamp?: unknown;
    appId?: unknown;
    headers?: Record<string, unknown> | undefined;
  };
}

export interface CodecOptions {
  /** fedora-messaging `topic_prefix`: routing key = `prefix.topic`. */
  topicPrefix?: string;
  maxBodyBytes?: number;
}

/** herald identity headers (fedora-messaging consumers ignore unknown headers). */
export const HERALD_FM_HEADER = {
  topic: "herald_topic",
  sentAt: "herald_sent_at",
  schemaVersion: "herald_schema_version",
  host: "herald_origin_host",
  app: "herald_origin_app",
  pid: "herald_origin_pid",
  user: "herald_origin_user",
  seq: "herald_seq",
  stream: "herald_stream",
  /** Prefix of every herald message header: `herald_h_<name>`. */
  headerPrefix: "herald_h_",
} as const;

const FM_SCHEMA = "fedora_messaging_schema";
const FM_SEVERITY = "fedora_messaging_severity";
const SENT_AT = "sent-at";
const SEVERITY_NAMES: ReadonlyMap<string, number> = new Map([
  ["debug", 10],
  ["info", 20],
  ["warning", 30],
  ["warn", 30],
  ["error", 40],
]);
const SEVERITY_LEVELS: ReadonlySet<number> = new Set([10, 20, 30, 40]);
/** Header keeping a native fedora-messaging message_id that herald's id rule does not allow. */
export const NATIVE_ID_HEADER = "amqp_message_id";
/** herald headers holding comma-separated names that become fedora-messaging filter headers. */
export const FILTER_KINDS: Readonly<Record<string, string>> = {
  users: "user",
  groups: "group",
  packages: "rpm",
  containers: "container",
  modules: "module",
  flatpaks: "flatpak",
};

export function routingKeyFor(topic: string, topicPrefix = ""): string {
  const key = topicPrefix ? `${topicPrefix}.${topic}` : topic;
  const bytes = Buffer.byteLength(key, "utf8");
  if (bytes > MAX_TOPIC_BYTES)
    throw rejected(
      "BAD_TOPIC",
      `routing key '${key.slice(0, 60)}...' is ${bytes} bytes, AMQP allows ${MAX_TOPIC_BYTES}: shorten the topic or the topicPrefix`,
    );
  return key;
}

export function encodeAmqp(msg: Message, format: AmqpFormat, options: CodecOptions = {}): AmqpPublish {
  try {
    return format === "herald" ? encodeHeraldAmqp(msg, options) : encodeFedoraMessaging(msg, options);
  } catch (err) {
    throw unencodable(msg.id, format, err);
  }
}

/** herald format: the canonical envelope bytes; the routing key is the (optionally prefixed) topic. */
export function encodeHeraldAmqp(msg: Message, options: CodecOptions = {}): AmqpPublish {
  return {
    routingKey: routingKeyFor(msg.topic, options.topicPrefix),
    content: storedEnvelopeBytes(msg) ?? encodeEnvelope(msg),
    properties: { contentType: HERALD_CONTENT_TYPE, deliveryMode: 2, messageId: msg.id, headers: {} },
  };
}

/** `2019-07-30T19:12:22+00:00`: what fedora-messaging writes in `sent-at` (seconds, explicit offset). */
export function fmSentAt(sentAt: string): string {
  return `${new Date(sentAt).toISOString().slice(0, 19)}+00:00`;
}

/**
 * fedora_messaging_severity from the header of that name, else `severity`; 20 (INFO) when neither holds
 * one of fedora-messaging's four levels. Its headers_schema allows only 10/20/30/40: with any other value
 * (25, 999, 21.5) its consumers reject the message after RabbitMQ confirmed it to herald.
 */
export function severityOf(headers: Headers): number {
  return severityLevel(headers[FM_SEVERITY]) ?? severityLevel(headers["severity"]) ?? DEFAULT_SEVERITY;
}

function severityLevel(v: HeaderValue | undefined): number | undefined {
  if (typeof v === "number") return SEVERITY_LEVELS.has(v) ? v : undefined;
  if (typeof v !== "string") return undefined;
  // `herald publish --header severity=30` gives the string "30": the number meant, not INFO.
  const s = v.trim().toLowerCase();
  const n = /^\d{1,3}$/.test(s) ? Number(s) : SEVERITY_NAMES.get(s);
  return n !== undefined && SEVERITY_LEVELS.has(n) ? n : undefined;
}

export function encodeFedoraMessaging(msg: Message, options: CodecOptions = {}): AmqpPublish {
  const h = msg.headers;
  const properties: AmqpPublishProperties = {
    contentType: FM_CONTENT_TYPE,
    contentEncoding: "utf-8",
    deliveryMode: 2,
    messageId: msg.id,
    headers: fedoraMessagingHeaders(msg),
  };
  const priority = priorityOf(h["priority"]);
  if (priority !== undefined) properties.priority = priority;
  return {
    routingKey: routingKeyFor(msg.topic, options.topicPrefix),
    content: Buffer.from(bodyText(msg.body), "utf8"),
    properties,
  };
}

/**
 * The AMQP priority (0-255) a `priority` header asks for: an integer, or its decimal digits as a string,
 * which is what `herald publish --header priority=7` gives (as for severity). Anything else sets none.
 */
function priorityOf(v: HeaderValue | undefined): number | undefined {
  const n = typeof v === "string" && /^\s*\d{1,3}\s*$/.test(v) ? Number(v) : v;
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 255 ? n : undefined;
}

/** Any key order will do: fedora-messaging's JSON body is not canonical. */
const ANY_ORDER: ReadyRules = { before: () => true, sort: (keys) => keys };

/**
 * JSON.stringify of the body, refusing what it would drop or rewrite without a word (a function value,
 * NaN, a Date, undefined in a list), as the herald and fedmsg encoders do: a test or a sink must not see
 * such a message go through here and fail on every other format. The walk allocates nothing for plain
 * JSON; only what it cannot vouch for meets the strict encoder, which throws for what has no JSON form.
 */
function bodyText(body: JsonObject): string {
  if (ready(body, ANY_ORDER) === FALLBACK) referenceCanonicalJson(body);
  return JSON.stringify(body);
}

/** The AMQP headers of a message in fedora-messaging format (the larger of the two AMQP formats). */
export function fedoraMessagingHeaders(msg: Message): Record<string, AmqpHeaderValue> {
  const h = msg.headers;
  const headers: Record<string, AmqpHeaderValue> = {};
  // Pass-through first: fedora-messaging headers a message already carries (e.g. ingested from FM).
  for (const [k, v] of Object.entries(h)) {
    if (k.startsWith("fedora_messaging_") || k === SENT_AT) setOwn(headers, k, amqpValue(v));
  }
  for (const [kind, prefix] of Object.entries(FILTER_KINDS)) {
    const names = h[kind];
    if (typeof names !== "string") continue;
    for (const n of names.split(",").map((x) => x.trim())) {
      if (n) headers[`fedora_messaging_${prefix}_${n}`] = true;
    }
  }
  headers[FM_SCHEMA] = msg.schema;
  headers[FM_SEVERITY] = severityOf(h);
  headers[SENT_AT] = typeof h[SENT_AT] === "string" ? h[SENT_AT] : fmSentAt(msg.sentAt);
  Object.assign(headers, heraldIdentityHeaders(msg));
  return headers;
}

function heraldIdentityHeaders(msg: Message): Record<string, AmqpHeaderValue> {
  const out: Record<string, AmqpHeaderValue> = {
    [HERALD_FM_HEADER.topic]: msg.topic,
    [HERALD_FM_HEADER.sentAt]: msg.sentAt,
    [HERALD_FM_HEADER.schemaVersion]: msg.schemaVersion,
    [HERALD_FM_HEADER.host]: msg.origin.host,
    [HERALD_FM_HEADER.app]: msg.origin.app,
    [HERALD_FM_HEADER.pid]: msg.origin.pid,
  };
  if (msg.origin.user !== undefined) out[HERALD_FM_HEADER.user] = msg.origin.user;
  if (msg.seq !== undefined) out[HERALD_FM_HEADER.seq] = msg.seq;
  if (msg.stream !== undefined) out[HERALD_FM_HEADER.stream] = msg.stream;
  for (const [k, v] of Object.entries(msg.headers)) out[HERALD_FM_HEADER.headerPrefix + k] = amqpValue(v);
  return out;
}

/** amqplib guesses integer widths; numbers it would mis-encode (huge or unsafe) go as explicit doubles. */
function amqpValue(v: HeaderValue): AmqpHeaderValue {
  if (typeof v === "number" && !Number.isSafeInteger(v) && Number.isInteger(v))
    return { "!": "double", value: v };
  return v;
}

export interface DecodedAmqp {
  message: Message;
  format: AmqpFormat;
}

/**
 * Normalize one AMQP message. `format: "auto"` picks by content type (formatOfContentType); a format set
 * explicitly ignores it. Throws ProtocolError for anything undecodable.
 */
export function decodeAmqp(
  incoming: AmqpIncoming,
  format: AmqpFormat | "auto" = "auto",
  options: CodecOptions = {},
): DecodedAmqp {
  const chosen = format !== "auto" ? format : formatOfContentType(incoming.properties.contentType);
  if (chosen === "herald")
    return { message: decodeEnvelope(incoming.content, options.maxBodyBytes), format: chosen };
  return { message: decodeFedoraMessaging(incoming, options), format: chosen };
}

export function decodeFedoraMessaging(incoming: AmqpIncoming, options: CodecOptions = {}): Message {
  let body: unknown;
  try {
    body = JSON.parse(incoming.content.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(`fedora-messaging body is not valid JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(body)) throw new ProtocolError("fedora-messaging body must be a JSON object");
  const raw = incoming.properties.headers ?? {};
  const message =
    typeof raw[HERALD_FM_HEADER.sentAt] === "string"
      ? fromHeraldHeaders(incoming, raw, body)
      : fromNativeHeaders(incoming, raw, body, options.topicPrefix ?? "");
  const [limit, named] = decoderBodyLimit(options.maxBodyBytes, 2);
  try {
    validateMessage(message, limit, named);
  } catch (err) {
    throw new ProtocolError(`fedora-messaging message is invalid: ${(err as Error).message}`, { cause: err });
  }
  return message;
}

function fromHeraldHeaders(
  incoming: AmqpIncoming,
  raw: Record<string, unknown>,
  body: Message["body"],
): Message {
  const H = HERALD_FM_HEADER;
  const headers: Headers = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k.startsWith(H.headerPrefix)) setOwn(headers, k.slice(H.headerPrefix.length), scalar(v));
  }
  const msg: Message = {
    id: str(incoming.properties.messageId, "message_id"),
    topic: str(raw[H.topic], H.topic),
    sentAt: str(raw[H.sentAt], H.sentAt),
    schema: typeof raw[FM_SCHEMA] === "string" ? raw[FM_SCHEMA] : DEFAULT_SCHEMA,
    schemaVersion: num(raw[H.schemaVersion], H.schemaVersion),
    headers,
    body,
    origin: { host: str(raw[H.host], H.host), app: str(raw[H.app], H.app), pid: num(raw[H.pid], H.pid) },
  };
  const { [H.user]: user, [H.seq]: seq, [H.stream]: stream } = raw;
  if (typeof user === "string") msg.origin.user = user;
  if (typeof seq === "number") msg.seq = seq;
  if (typeof stream === "string") msg.stream = stream;
  return msg;
}

/** A message from a real fedora-messaging publisher: keep every header so re-publishing is faithful. */
function fromNativeHeaders(
  incoming: AmqpIncoming,
  raw: Record<string, unknown>,
  body: Message["body"],
  topicPrefix: string,
): Message {
  const headers: Headers = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k !== FM_SCHEMA && k !== SENT_AT) setOwn(headers, k, scalar(v));
  }
  if (typeof headers[FM_SEVERITY] === "number") headers["severity"] = headers[FM_SEVERITY];
  const { priority, appId } = incoming.properties;
  if (typeof priority === "number" && headers["priority"] === undefined) headers["priority"] = priority;
  const sentAt = nativeSentAt(raw[SENT_AT], incoming.properties.timestamp);
  // Keep a sent-at we would not reproduce exactly (other offset, microseconds) for faithful re-publishing.
  if (typeof raw[SENT_AT] === "string" && raw[SENT_AT] !== fmSentAt(sentAt)) headers[SENT_AT] = raw[SENT_AT];
  const rk = incoming.routingKey;
  return {
    id: nativeId(incoming, headers),
    topic: topicPrefix && rk.startsWith(`${topicPrefix}.`) ? rk.slice(topicPrefix.length + 1) : rk,
    sentAt,
    schema: typeof raw[FM_SCHEMA] === "string" && raw[FM_SCHEMA] ? raw[FM_SCHEMA] : DEFAULT_SCHEMA,
    schemaVersion: 1,
    headers,
    body,
    origin: { host: "unknown", app: typeof appId === "string" ? appId : "fedora-messaging", pid: 0 },
  };
}

function nativeSentAt(sentAt: unknown, timestamp: unknown): string {
  if (typeof sentAt === "string") {
    // Python isoformat may carry microseconds; JavaScript dates keep milliseconds.
    const fromHeader = sentAtFromMillis(Date.parse(sentAt.replace(/(\.\d{3})\d+/, "$1")));
    if (fromHeader !== undefined) return fromHeader;
  }
  const fromProperty = typeof timestamp === "number" ? sentAtFromMillis(timestamp * 1000) : undefined;
  if (fromProperty !== undefined) return fromProperty;
  throw new ProtocolError("fedora-messaging message has no usable 'sent-at' header or timestamp property");
}

/**
 * The message_id when herald's id rule allows it. fedora-messaging accepts any string ("a/b+c==", "<1@host>",
 * longer than 128): such an id becomes `fm-<sha256 of it>` (a redelivery keeps its id, so dedup still works)
 * and the original is kept in header `amqp_message_id`, instead of the whole message being rejected.
 */
function nativeId(incoming: AmqpIncoming, headers: Headers): string {
  const id = incoming.properties.messageId;
  if (typeof id !== "string" || id.length === 0) return contentId(incoming);
  if (ID_RE.test(id)) return id;
  headers[NATIVE_ID_HEADER] = id;
  return `fm-${createHash("sha256").update("message_id\0").update(id).digest("hex").slice(0, 40)}`;
}

/** A stable id for id-less messages, so a redelivery is recognised as the same message. */
function contentId(incoming: AmqpIncoming): string {
  const h = createHash("sha256").update(incoming.routingKey).update("\0").update(incoming.content);
  return `fm-${h.digest("hex").slice(0, 40)}`;
}

function scalar(v: unknown): HeaderValue {
  if (v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  if (v === undefined) return null;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (typeof v === "object" && "!" in v && "value" in v) {
    const inner = (v as { value: unknown }).value;
    if (typeof inner === "number") return inner;
  }
  return JSON.stringify(v);
}

function str(v: unknown, name: string): string {
  if (typeof v !== "string") throw new ProtocolError(`AMQP field '${name}' must be a string`);
  return v;
}

function num(v: unknown, name: string): number {
  if (typeof v !== "number") throw new ProtocolError(`AMQP header '${name}' must be a number`);
  return v;
}
