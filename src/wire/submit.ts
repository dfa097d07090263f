import { type ErrorCode, type HeraldError, ProtocolError } from "../errors.js";
import { inCanonicalOrderOr, isJsonObject, type JsonObject } from "./json.js";
import {
  assertJsonBody,
  type Headers,
  jsonTypeName,
  type Message,
  type MessageInput,
  type Origin,
} from "./message.js";

/**
 * The submit protocol (docs/submit-protocol.md): a client DEALER (or REQ) talks to the broker's ROUTER.
 *
 * Request frames:  ["HERALD1", request-id, JSON {"messages": [submitted message, ...]}]
 * Reply frames:    ["HERALD1", request-id, JSON {"results": [result, ...]}]  or  {"error": {code, message}}
 *
 * A REQ socket adds an empty delimiter frame in front; the broker mirrors it in the reply.
 */
export const SUBMIT_PROTOCOL = "HERALD1";
export const MAX_REQUEST_ID_BYTES = 64;

/**
 * A frame to send. The JSON payload goes as a string: zeromq.js sends a Buffer over 128 bytes without a
 * copy and must then release it on the main thread, so the I/O thread wakes the event loop once per
 * send; a string is copied to UTF-8 in C++ and freed on the I/O thread. Received frames are Buffers.
 */
export type Frame = Buffer | string;

/** One message as it travels in a submit request (snake_case like the envelope). */
export interface WireSubmitted {
  id: string;
  topic: string;
  body: JsonObject;
  sent_at?: string;
  schema?: string;
  schema_version?: number;
  headers?: Headers;
  origin?: Partial<Origin>;
  /** Brokers this message was already forwarded through (forwarding sinks set it). */
  via?: string[];
}

export type SubmitResult =
  | { ok: true; id: string; seq: number; accepted_at: string; duplicate: boolean }
  | { ok: false; id: string; error: { code: ErrorCode; message: string; retryable?: boolean } };

export type SubmitReply =
  | { results: SubmitResult[] }
  /** The whole request refused; `max_batch` when it held more messages than the broker's maxBatch. */
  | { error: { code: ErrorCode; message: string; max_batch?: number } }
  /** Answer to a control command such as `{"command": "status"}`. */
  | { result: unknown };

export function encodeSubmitRequest(requestId: string, messages: readonly Message[]): Frame[] {
  return encodeSubmitParts(requestId, messages.map(encodeSubmitted));
}

/** One message's JSON as it goes into a request (the client encodes each once, then packs requests). */
export function encodeSubmitted(m: Message): string {
  return JSON.stringify(toWireSubmitted(m));
}

/** A request from messages already encoded with encodeSubmitted. */
export function encodeSubmitParts(requestId: string, parts: readonly string[]): Frame[] {
  return [Buffer.from(SUBMIT_PROTOCOL), Buffer.from(requestId), `{"messages":[${parts.join(",")}]}`];
}

function toWireSubmitted(m: Message): WireSubmitted {
  return {
    id: m.id,
    topic: m.topic,
    // In canonical key order, so that the broker (one thread for every publisher) finds it sorted. A body
    // the fast path cannot vouch for is checked as validateMessage would (a message built by hand and given
    // to submit()): JSON.stringify would turn a Date into a string and a Map into {}, or throw on a BigInt.
    body: inCanonicalOrderOr(m.body, (body) => assertJsonBody(body, m.id)),
    sent_at: m.sentAt,
    schema: m.schema,
    schema_version: m.schemaVersion,
    headers: m.headers,
    origin: m.origin,
    ...(m.via && m.via.length > 0 ? { via: m.via } : {}),
  };
}

export type SubmittedInput = MessageInput & { id: string; via?: string[] };

export interface DecodedRequest {
  requestId: Buffer;
  /** Bytes of the JSON payload the messages were parsed from. */
  payloadBytes: number;
  /** Each entry is a message to validate, or a per-message decode problem. */
  messages: Array<{ ok: true; input: SubmittedInput } | { ok: false; id: string; problem: string }>;
}

/** A control command (`{"command": "status", "args": {...}}`), sharing the socket with submits. */
export interface DecodedCommand {
  requestId: Buffer;
  command: string;
  args: Record<string, unknown>;
}

const PROTOCOL_BYTES = Buffer.from(SUBMIT_PROTOCOL);

/**
 * Decode a request's frames (without routing id and delimiter): a submit or a command. The frame, protocol
 * and request id checks hold for both; the payload is parsed once and its keys say which it is. Throws
 * ProtocolError for the whole request.
 */
export function decodeRequest(frames: readonly Buffer[], maxBatch: number): DecodedRequest | DecodedCommand {
  const [requestId, payload] = checkFrames(frames);
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(`request payload is not valid JSON: ${(err as Error).message}`);
  }
  if (isJsonObject(parsed) && parsed["command"] !== undefined) return toCommand(requestId, parsed);
  if (!isJsonObject(parsed) || !Array.isArray(parsed["messages"]))
    throw new ProtocolError(
      'request payload must be a JSON object {"messages": [...]} or {"command": "..."}',
    );
  const list = parsed["messages"];
  if (list.length === 0) throw new ProtocolError("request has no messages");
  if (list.length > maxBatch)
    throw new ProtocolError(`request has ${list.length} messages; broker.submit.maxBatch is ${maxBatch}`, {
      details: { maxBatch },
    });
  return { requestId, payloadBytes: payload.length, messages: list.map(decodeOne) };
}

/** decodeRequest for a submit only: a command is a ProtocolError. */
export function decodeSubmitRequest(frames: readonly Buffer[], maxBatch: number): DecodedRequest {
  const r = decodeRequest(frames, maxBatch);
  if ("command" in r)
    throw new ProtocolError(`expected messages, got the command ${JSON.stringify(r.command)}`);
  return r;
}

/** The request id and payload of a well-framed request. */
function checkFrames(frames: readonly Buffer[]): [Buffer, Buffer] {
  if (frames.length !== 3)
    throw new ProtocolError(
      `a submit request has 3 frames (protocol, request id, JSON); got ${frames.length}`,
    );
  const [proto, requestId, payload] = frames as [Buffer, Buffer, Buffer];
  if (!proto.equals(PROTOCOL_BYTES))
    throw new ProtocolError(`first frame must be "${SUBMIT_PROTOCOL}" (the submit protocol version)`);
  if (requestId.length > MAX_REQUEST_ID_BYTES)
    throw new ProtocolError(`request id is ${requestId.length} bytes; at most ${MAX_REQUEST_ID_BYTES}`);
  return [requestId, payload];
}

function toCommand(requestId: Buffer, parsed: JsonObject): DecodedCommand {
  const { command, args } = parsed;
  if (typeof command !== "string")
    throw new ProtocolError('\'command\' must be a string such as "status" or "ping"');
  if (parsed["messages"] !== undefined)
    throw new ProtocolError("a request holds either 'messages' or a 'command', not both: send them apart");
  if (args !== undefined && !isJsonObject(args))
    throw new ProtocolError(`command '${command}': 'args' must be an object`);
  return { requestId, command, args: args ?? {} };
}

function decodeOne(raw: unknown): DecodedRequest["messages"][number] {
  if (!isJsonObject(raw)) return { ok: false, id: "", problem: "each message must be a JSON object" };
  const id = typeof raw["id"] === "string" ? raw["id"] : "";
  if (id === "") return { ok: false, id, problem: "message 'id' is required (a UUIDv7; clients make one)" };
  if (typeof raw["topic"] !== "string") return { ok: false, id, problem: "message 'topic' must be a string" };
  if (!isJsonObject(raw["body"])) return { ok: false, id, problem: "message 'body' must be a JSON object" };
  const input: SubmittedInput = { id, topic: raw["topic"], body: raw["body"] };
  const problem = optionalFields(raw, input) ?? originField(raw["origin"], input);
  return problem === undefined ? { ok: true, input } : { ok: false, id, problem };
}

/**
 * The optional fields, each type-checked as it is copied: a field is never coerced (String({}) would store
 * "[object Object]", and an object whose toString is not a function would throw and fail the whole request).
 * The values themselves are checked by validateMessage. Returns the first problem.
 */
function optionalFields(raw: JsonObject, input: SubmittedInput): string | undefined {
  const { via, sent_at, schema, schema_version, headers } = raw;
  if (via !== undefined) {
    if (!Array.isArray(via) || !via.every((v) => typeof v === "string"))
      return "'via' must be a list of broker names";
    input.via = via as string[];
  }
  if (sent_at !== undefined) {
    if (typeof sent_at !== "string")
      return "'sent_at' must be an ISO 8601 string such as 2026-11-30T08:18:08.123Z";
    input.sentAt = sent_at;
  }
  if (schema !== undefined) {
    if (typeof schema !== "string")
      return `'schema' must be a string such as "base.message", got ${jsonTypeName(schema)}`;
    input.schema = schema;
  }
  if (schema_version !== undefined) {
    if (typeof schema_version !== "number")
      return `'schema_version' must be an integer such as 1, got ${jsonTypeName(schema_version)}`;
    input.schemaVersion = schema_version;
  }
  if (headers !== undefined) {
    if (!isJsonObject(headers)) return "'headers' must be an object";
    input.headers = headers as Headers;
  }
  return undefined;
}

/** `origin`: each field of the type Origin says; absent ones are filled in by the broker. */
function originField(origin: unknown, input: SubmittedInput): string | undefined {
  if (origin === undefined) return undefined;
  if (!isJsonObject(origin)) return "'origin' must be an object {host, app, pid, user?}";
  for (const k of ["host", "app", "user"] as const) {
    const v = origin[k];
    if (v !== undefined && typeof v !== "string")
      return `'origin.${k}' must be a string${k === "user" ? " (leave it out when unknown)" : ""}, got ${jsonTypeName(v)}`;
  }
  if (origin["pid"] !== undefined && typeof origin["pid"] !== "number")
    return `'origin.pid' must be an integer (a process id), got ${jsonTypeName(origin["pid"])}`;
  input.origin = origin as Partial<Origin>;
  return undefined;
}

export function encodeReply(requestId: Buffer, reply: SubmitReply): Frame[] {
  return [Buffer.from(SUBMIT_PROTOCOL), requestId, JSON.stringify(reply)];
}

export function encodeCommand(requestId: string, name: string, args: Record<string, unknown> = {}): Frame[] {
  return [Buffer.from(SUBMIT_PROTOCOL), Buffer.from(requestId), JSON.stringify({ command: name, args })];
}

export function errorReply(err: HeraldError): SubmitReply {
  const maxBatch = err.details["maxBatch"];
  // A number a client acts on (it splits the request), so it travels as a field, not only in the text.
  if (typeof maxBatch === "number")
    return { error: { code: err.code, message: err.message, max_batch: maxBatch } };
  return { error: { code: err.code, message: err.message } };
}

/** Decode a reply (client side). */
export function decodeReply(frames: readonly Buffer[]): { requestId: string; reply: SubmitReply } {
  if (frames.length !== 3) throw new ProtocolError(`a submit reply has 3 frames; got ${frames.length}`);
  const [proto, requestId, payload] = frames as [Buffer, Buffer, Buffer];
  if (!proto.equals(Buffer.from(SUBMIT_PROTOCOL)))
    throw new ProtocolError("reply is not from a herald broker");
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(`reply is not valid JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(parsed) || !("results" in parsed || "error" in parsed || "result" in parsed))
    throw new ProtocolError("reply must hold 'results', 'result' or 'error'");
  return { requestId: requestId.toString(), reply: parsed as unknown as SubmitReply };
}
