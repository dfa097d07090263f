import { closeSync, openSync, readSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { basename } from "node:path";
import { rejected } from "../errors.js";
import { nodeCrypto } from "../util/node-crypto.js";
import { bodyFault, bodyRejected } from "./body.js";
import { isJsonObject, type JsonObject, type JsonShaped, type NotArray, pythonJson } from "./json.js";
import { topicProblem } from "./topic.js";

/** Header values are scalars so that every transport (AMQP headers, CloudEvents attributes) carries them. */
export type HeaderValue = string | number | boolean | null;
export type Headers = Record<string, HeaderValue>;

export interface Origin {
  /** Host name of the publishing process. */
  host: string;
  /** Application name (fedmsg: the module name). */
  app: string;
  pid: number;
  /** OS user of the publishing process (fedmsg's `username`). */
  user?: string;
}

/**
 * herald's one normalized message, whatever wire format it came from or goes to.
 * `seq` and `stream` are set by the publishing socket (per-socket sequence, for gap detection);
 * everything else is fixed when the message is created and survives every hop unchanged.
 */
export interface Message {
  /** Unique, time-sortable (UUIDv7) for herald messages; legacy `msg_id` values are kept as they were. */
  id: string;
  topic: string;
  /** UTC, ISO 8601 with milliseconds, e.g. `2026-11-30T08:18:08.123Z`. */
  sentAt: string;
  schema: string;
  schemaVersion: number;
  headers: Headers;
  body: JsonObject;
  origin: Origin;
  /** Per-publisher-socket sequence number, starting at 1 for each `stream`. */
  seq?: number;
  /** Identifies one run of one publishing socket; a new stream resets `seq`. */
  stream?: string;
  /** Names of the herald brokers this message was forwarded through (loop detection); not signed. */
  via?: string[];
}

/**
 * Fields a publisher supplies; the rest is filled in. `B` is the body's type: a JsonObject, or any type whose
 * fields are JSON (JsonShaped), such as an app's own interface.
 */
export interface MessageInput<B = JsonObject> {
  topic: string;
  body: B;
  id?: string;
  sentAt?: string;
  schema?: string;
  schemaVersion?: number;
  headers?: Headers;
  origin?: Partial<Origin>;
}

export const DEFAULT_SCHEMA = "base.message";
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/**
 * validateMessage's limit for a decoder: `given` (its caller's) or, when not given, the decoder's own
 * default, `times` the default limits.maxBodyBytes. A TOO_LARGE then says so: no configured value played a
 * part (`herald replay` reading a cassette), and "limits.maxBodyBytes" would name one the user did not set.
 */
export function decoderBodyLimit(given: number | undefined, times: number): [number, ValidateOptions] {
  if (given !== undefined) return [given, {}];
  const made = `${times === 1 ? "" : `${times} x `}the default limits.maxBodyBytes, ${DEFAULT_MAX_BODY_BYTES}`;
  return [DEFAULT_MAX_BODY_BYTES * times, { limitName: `the decoder's default: ${made}` }];
}

/** herald's message id rule (validateMessage); the AMQP decoder maps native ids outside it. */
export const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

let lastMs = 0;
let counter = 0;

/** RFC 9562 UUIDv7: 48-bit millisecond time, then a counter and randomness; sortable as text. */
/**
 * Random bytes from a pool refilled 4 KiB at a time: a randomBytes() call per id cost more than the rest of
 * building a message (13% of a one-at-a-time publisher's CPU). Each chunk is handed out once.
 */
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolOffset = POOL_BYTES;

/**
 * The kernel's CSPRNG, the source OpenSSL itself seeds from. Read directly, a one-shot `herald publish`
 * does not load node:crypto at all (util/node-crypto.ts says what that costs); where the device cannot
 * be read, node:crypto fills the pool.
 */
function refill(): void {
  try {
    const fd = openSync("/dev/urandom", "r");
    try {
      for (let got = 0; got < POOL_BYTES; ) {
        const n = readSync(fd, pool, got, POOL_BYTES - got, null);
        if (n <= 0) throw new Error("short read from /dev/urandom");
        got += n;
      }
    } finally {
      closeSync(fd);
    }
  } catch {
    nodeCrypto().randomFillSync(pool);
  }
}

export function randomChunk(n: number): Buffer {
  if (poolOffset + n > POOL_BYTES) {
    refill();
    poolOffset = 0;
  }
  const chunk = pool.subarray(poolOffset, poolOffset + n);
  poolOffset += n;
  return chunk;
}

export function newId(now: number = Date.now()): string {
  if (now <= lastMs) counter = (counter + 1) & 0xfff;
  else {
    lastMs = now;
    counter = randomChunk(2).readUInt16BE(0) & 0x7ff;
  }
  const ms = Math.max(now, lastMs);
  const b = randomChunk(16);
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | (counter >> 8);
  b[7] = counter & 0xff;
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = b.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

let defaultOrigin: Origin | undefined;

export function localOrigin(): Origin {
  defaultOrigin ??= {
    host: hostname(),
    app:
      process.env["HERALD_APP"] ??
      (basename(process.argv[1] ?? "node").replace(/\.[cm]?[jt]s$/, "") || "node"),
    pid: process.pid,
    user: safeUser(),
  };
  return defaultOrigin;
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env["USER"] ?? "unknown";
  }
}

let isoMs = Number.NaN;
let isoText = "";

/**
 * Milliseconds since 1970 as a sentAt, or undefined outside years 0000-9999: toISOString writes other years
 * as `+275760-09-13T...`, which no reader of ISO 8601 takes (and past +-8.64e15 ms it throws).
 */
export function sentAtFromMillis(ms: number): string | undefined {
  return ms >= MIN_SENT_AT_MS && ms < MAX_SENT_AT_MS ? new Date(ms).toISOString() : undefined;
}
/** 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z (Date.UTC reads years 0-99 as 1900-1999). */
const MIN_SENT_AT_MS = -62_167_219_200_000;
const MAX_SENT_AT_MS = 253_402_300_800_000;

/**
 * `now` as ISO 8601 with milliseconds. The text of the last millisecond asked for is kept: messages made
 * in a burst share their sentAt, and formatting a Date per message was 8% of a windowed publisher's CPU.
 */
export function isoNow(now: number = Date.now()): string {
  if (now !== isoMs) {
    isoText = new Date(now).toISOString();
    isoMs = now;
  }
  return isoText;
}

/** Build a complete message from publisher input, validating what can be checked locally. */
export function createMessage(input: MessageInput, maxBodyBytes?: number): Message;
/** An app's own body type (an interface): each field must be JSON (JsonShaped). */
export function createMessage<B extends object & JsonShaped<B> & NotArray>(
  input: MessageInput<B>,
  maxBodyBytes?: number,
): Message;
export function createMessage(
  input: MessageInput<object>,
  maxBodyBytes: number = DEFAULT_MAX_BODY_BYTES,
): Message {
  const now = Date.now();
  const msg: Message = {
    id: input.id ?? newId(now),
    topic: input.topic,
    sentAt: input.sentAt ?? isoNow(now),
    schema: input.schema ?? DEFAULT_SCHEMA,
    schemaVersion: input.schemaVersion ?? 1,
    headers: input.headers ?? {},
    // JsonShaped<B> is JSON field by field; validateMessage below checks the values at run time.
    body: input.body as JsonObject,
    origin: { ...localOrigin(), ...input.origin },
  };
  validateMessage(msg, maxBodyBytes);
  return msg;
}

/**
 * The most the UTF-8 length of JSON text can grow when it is parsed and written again by JSON.stringify: a
 * number token such as `1e20` (4 bytes) becomes 21 digits, and an invalid UTF-8 byte decodes to U+FFFD (3
 * bytes); strings, escapes and whitespace otherwise stay as long or shrink.
 */
export const JSON_REWRITE_GROWTH = 6;

export interface ValidateOptions {
  /**
   * UTF-8 length of the JSON text the message was parsed from. When that text, grown JSON_REWRITE_GROWTH
   * times, still fits maxBodyBytes, the body cannot exceed it and is not encoded again to be measured.
   */
  sourceBytes?: number;
  /**
   * What maxBodyBytes is made of, for the TOO_LARGE message: "limits.maxBodyBytes" unless said (a decoder's
   * default is not the configured limit).
   */
  limitName?: string;
}

/**
 * sentAt's form: YYYY-MM-DDTHH:MM:SS, an optional fraction, then Z or an offset ±HH:MM. Date.parse alone takes
 * "1" or "March 7, 2024" (in the broker's local time zone). The value is kept as written, never normalised:
 * signatures cover it.
 */
const SENT_AT_RE =
  /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;
const SENT_AT_FORM =
  "YYYY-MM-DDTHH:MM:SS, optional fraction, then Z or ±HH:MM, e.g. 2026-11-30T08:18:08.123Z";

/** Whether `s` is a sentAt herald accepts (SENT_AT_RE, and a day its month has). */
export function isSentAt(s: unknown): s is string {
  if (typeof s !== "string" || !SENT_AT_RE.test(s)) return false;
  const day = Number(s.slice(8, 10));
  if (day <= 28) return true;
  // Date.parse takes 2024-02-30 as March 1st; the regular expression only knows 31 is a day.
  const year = Number(s.slice(0, 4));
  const month = Number(s.slice(5, 7));
  return new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day;
}

/** At most this many brokers in `via`: a forwarding chain longer than that is a loop or an attack. */
export const MAX_VIA = 32;
/** A broker name (config broker.name: non-empty, no spaces), at most 255 characters like a host name. */
const BROKER_NAME_RE = /^\S{1,255}$/;

export { assertJsonBody, MAX_BODY_DEPTH } from "./body.js";

/** Throws a typed MessageRejectedError naming the first problem found. */
export function validateMessage(
  msg: Message,
  maxBodyBytes: number = DEFAULT_MAX_BODY_BYTES,
  opts: ValidateOptions = {},
): void {
  const problem = topicProblem(msg.topic);
  if (problem) throw rejected("BAD_TOPIC", problem, { id: msg.id });
  if (typeof msg.id !== "string" || !ID_RE.test(msg.id))
    throw rejected(
      "INVALID",
      "id must be 1-128 characters of letters, digits and . _ : - (a UUIDv7 by default)",
    );
  const id = msg.id;
  if (!isSentAt(msg.sentAt)) {
    const got = show(msg.sentAt);
    throw rejected("INVALID", `sentAt (sent_at) must be an ISO 8601 time: ${SENT_AT_FORM}; got ${got}`, {
      id,
    });
  }
  if (typeof msg.schema !== "string" || msg.schema.length === 0 || msg.schema.length > 255)
    throw rejected("INVALID", "schema must be a non-empty name such as 'base.message'", { id });
  if (!Number.isInteger(msg.schemaVersion) || msg.schemaVersion < 0)
    throw rejected("INVALID", "schemaVersion must be a non-negative integer", { id });
  if (!isJsonObject(msg.body)) throw rejected("INVALID", "body must be a JSON object", { id });
  validateOrigin(msg.origin, id);
  validateHeaders(msg.headers, id);
  checkFedmsgTimestamp(msg, id);
  if (msg.via !== undefined) validateVia(msg.via, id);
  const fault = bodyFault(msg.body, 1);
  if (fault !== undefined) throw bodyRejected(fault, id);
  const src = opts.sourceBytes;
  if (src !== undefined && src * JSON_REWRITE_GROWTH <= maxBodyBytes) return;
  const size = Buffer.byteLength(JSON.stringify(msg.body), "utf8");
  if (size > maxBodyBytes)
    throw rejected(
      "TOO_LARGE",
      `body is ${size} bytes, the limit is ${maxBodyBytes} (${opts.limitName ?? "limits.maxBodyBytes"})`,
      { id, size, limit: maxBodyBytes },
    );
}

/** A value for an error message, cut short: the value may be the megabytes that made it wrong. */
function show(v: unknown): string {
  if (typeof v !== "string") return jsonTypeName(v);
  return v.length > 40 ? `${JSON.stringify(v.slice(0, 40)).slice(0, -1)}..."` : JSON.stringify(v);
}

/** The JSON type of a value, for error messages that must not quote it. */
export function jsonTypeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

function validateOrigin(origin: unknown, id: string): void {
  if (!isJsonObject(origin))
    throw rejected("INVALID", "origin must be an object {host, app, pid, user?}", { id });
  const { host, app, pid, user } = origin;
  const wrong =
    typeof host !== "string"
      ? `origin.host must be a string, got ${show(host)}`
      : typeof app !== "string"
        ? `origin.app must be a string, got ${show(app)}`
        : !Number.isSafeInteger(pid) || (pid as number) < 0
          ? `origin.pid must be a non-negative integer (a process id, 0 when unknown), got ${show(pid)}`
          : user !== undefined && typeof user !== "string"
            ? `origin.user must be a string (leave it out when unknown), got ${show(user)}`
            : undefined;
  if (wrong !== undefined) throw rejected("INVALID", wrong, { id });
}

/**
 * `via` is stored and sent with the message: unbounded, a 7-byte body with megabytes of via would be acknowledged
 * and then refused by every sink's size limit with advice about the body.
 */
function validateVia(via: unknown, id: string): void {
  if (!Array.isArray(via))
    throw rejected("INVALID", "via must be a list of broker names (the brokers it was forwarded through)", {
      id,
    });
  if (via.length > MAX_VIA)
    throw rejected("INVALID", `via lists ${via.length} brokers, at most ${MAX_VIA}: a forwarding loop?`, {
      id,
    });
  for (const name of via)
    if (typeof name !== "string" || !BROKER_NAME_RE.test(name))
      throw rejected(
        "INVALID",
        `via entry ${show(name)} is not a broker name (broker.name: 1-255 characters, no spaces)`,
        { id },
      );
}

function validateHeaders(headers: unknown, id: string): void {
  if (!isJsonObject(headers)) throw rejected("INVALID", "headers must be an object of scalar values", { id });
  for (const [k, v] of Object.entries(headers)) {
    if ((v !== null && typeof v === "object") || (typeof v === "number" && !Number.isFinite(v)))
      throw rejected("INVALID", `header '${k}' must be a string, finite number, boolean or null`, { id });
  }
  const extra = headers[FEDMSG_EXTRA];
  if (extra !== undefined) checkFedmsgExtra(extra, id);
}

/** Top-level fedmsg envelope fields the legacy format re-emits (wire/legacy.ts LEGACY_HEADER.extra). */
const FEDMSG_EXTRA = "fedmsg.extra";

/**
 * Envelope fields the legacy encoder writes from the message itself and never from `fedmsg.extra`: fedmsg
 * consumers and datagrepper read the topic and msg_id from the envelope, so a header must not make the
 * legacy form say something the message (and the topic policy, which saw msg.topic) does not.
 */
export const DERIVED_FIELDS: ReadonlySet<string> = new Set(["topic", "msg", "msg_id", "timestamp"]);

/**
 * `fedmsg.timestamp` keeps a legacy message's exact timestamp (fractions as sent), from which its sentAt
 * was made: one that says another time would make the legacy envelope contradict the message.
 */
function checkFedmsgTimestamp(msg: Message, id: string): void {
  const ts = msg.headers[FEDMSG_TIMESTAMP];
  if (ts === undefined) return;
  if (typeof ts === "number" && sentAtFromMillis(ts * 1000) === msg.sentAt) return;
  throw rejected(
    "INVALID",
    `header '${FEDMSG_TIMESTAMP}' must be the message's sent_at in seconds (${msg.sentAt}): it is the legacy envelope's timestamp; leave it out`,
    { id },
  );
}

const FEDMSG_TIMESTAMP = "fedmsg.timestamp";

/**
 * The legacy encoder merges this header into every fedmsg envelope it writes: one it cannot encode would
 * be stored, acknowledged, and then refused by every legacy-format sink. Refused here instead.
 */
function checkFedmsgExtra(extra: unknown, id: string): void {
  let problem: string | undefined;
  try {
    const v: unknown = typeof extra === "string" ? JSON.parse(extra) : undefined;
    const named = isJsonObject(v)
      ? Object.keys(v).find((k) => DERIVED_FIELDS.has(k) || k === "__proto__")
      : undefined;
    if (!isJsonObject(v)) problem = "must be the JSON text of an object";
    else if (named !== undefined)
      problem = `may not set '${named}' (the legacy envelope's topic, msg, msg_id and timestamp come from the message itself)`;
    else pythonJson(v);
  } catch (err) {
    problem = `cannot be re-encoded (${(err as Error).message})`;
  }
  if (problem !== undefined)
    throw rejected("INVALID", `header '${FEDMSG_EXTRA}' ${problem}: it holds legacy envelope fields`, { id });
}
