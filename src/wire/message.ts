import { closeSync, openSync, readSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { basename } from "node:path";
import { rejected } from "../errors.js";
import { nodeCrypto } from "../util/node-crypto.js";
import { isJsonObject, type JsonObject, pythonJson } from "./json.js";
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

/** Fields a publisher supplies; the rest is filled in. */
export interface MessageInput {
  topic: string;
  body: JsonObject;
  id?: string;
  sentAt?: string;
  schema?: string;
  schemaVersion?: number;
  headers?: Headers;
  origin?: Partial<Origin>;
}

export const DEFAULT_SCHEMA = "base.message";
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;
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
export function createMessage(input: MessageInput, maxBodyBytes: number = DEFAULT_MAX_BODY_BYTES): Message {
  const now = Date.now();
  const msg: Message = {
    id: input.id ?? newId(now),
    topic: input.topic,
    sentAt: input.sentAt ?? isoNow(now),
    schema: input.schema ?? DEFAULT_SCHEMA,
    schemaVersion: input.schemaVersion ?? 1,
    headers: input.headers ?? {},
    body: input.body,
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
}

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
  if (typeof msg.sentAt !== "string" || Number.isNaN(Date.parse(msg.sentAt)))
    throw rejected("INVALID", `sentAt must be an ISO 8601 time, got ${JSON.stringify(msg.sentAt)}`, {
      id: msg.id,
    });
  if (typeof msg.schema !== "string" || msg.schema.length === 0 || msg.schema.length > 255)
    throw rejected("INVALID", "schema must be a non-empty name such as 'base.message'", { id: msg.id });
  if (!Number.isInteger(msg.schemaVersion) || msg.schemaVersion < 0)
    throw rejected("INVALID", "schemaVersion must be a non-negative integer", { id: msg.id });
  if (!isJsonObject(msg.body)) throw rejected("INVALID", "body must be a JSON object", { id: msg.id });
  validateHeaders(msg.headers, msg.id);
  const src = opts.sourceBytes;
  if (src !== undefined && src * JSON_REWRITE_GROWTH <= maxBodyBytes) return;
  const size = Buffer.byteLength(JSON.stringify(msg.body), "utf8");
  if (size > maxBodyBytes)
    throw rejected("TOO_LARGE", `body is ${size} bytes, the limit is ${maxBodyBytes} (limits.maxBodyBytes)`, {
      id: msg.id,
      size,
      limit: maxBodyBytes,
    });
}

function validateHeaders(headers: unknown, id: string): void {
  if (!isJsonObject(headers)) throw rejected("INVALID", "headers must be an object of scalar values", { id });
  for (const [k, v] of Object.entries(headers)) {
    if (v !== null && typeof v === "object")
      throw rejected("INVALID", `header '${k}' must be a string, number, boolean or null`, { id });
  }
  const extra = headers[FEDMSG_EXTRA];
  if (extra !== undefined) checkFedmsgExtra(extra, id);
}

/** Top-level fedmsg envelope fields the legacy format re-emits (wire/legacy.ts LEGACY_HEADER.extra). */
const FEDMSG_EXTRA = "fedmsg.extra";

/**
 * The legacy encoder merges this header into every fedmsg envelope it writes: one it cannot encode would
 * be stored, acknowledged, and then refused by every legacy-format sink. Refused here instead.
 */
function checkFedmsgExtra(extra: unknown, id: string): void {
  let problem: string | undefined;
  try {
    const v: unknown = typeof extra === "string" ? JSON.parse(extra) : undefined;
    if (!isJsonObject(v)) problem = "must be the JSON text of an object";
    else pythonJson(v);
  } catch (err) {
    problem = `cannot be re-encoded (${(err as Error).message})`;
  }
  if (problem !== undefined)
    throw rejected("INVALID", `header '${FEDMSG_EXTRA}' ${problem}: it holds legacy envelope fields`, { id });
}
