import { type ErrorCode, type HeraldError, ProtocolError } from "../errors.js";
import { inCanonicalOrder, isJsonObject, type JsonObject } from "./json.js";
import type { Headers, Message, MessageInput, Origin } from "./message.js";

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
  | { error: { code: ErrorCode; message: string } }
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
    // In canonical key order, so that the broker (one thread for every publisher) finds it sorted.
    body: inCanonicalOrder(m.body),
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

/** Decode a request's frames (without routing id and delimiter). Throws ProtocolError for the whole request. */
export function decodeSubmitRequest(frames: readonly Buffer[], maxBatch: number): DecodedRequest {
  if (frames.length !== 3)
    throw new ProtocolError(
      `a submit request has 3 frames (protocol, request id, JSON); got ${frames.length}`,
    );
  const [proto, requestId, payload] = frames as [Buffer, Buffer, Buffer];
  if (!proto.equals(Buffer.from(SUBMIT_PROTOCOL)))
    throw new ProtocolError(`first frame must be "${SUBMIT_PROTOCOL}" (the submit protocol version)`);
  if (requestId.length > MAX_REQUEST_ID_BYTES)
    throw new ProtocolError(`request id is ${requestId.length} bytes; at most ${MAX_REQUEST_ID_BYTES}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString("utf8"));
  } catch (err) {
    throw new ProtocolError(`request payload is not valid JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(parsed) || !Array.isArray(parsed["messages"]))
    throw new ProtocolError('request payload must be a JSON object {"messages": [...]}');
  const list = parsed["messages"];
  if (list.length === 0) throw new ProtocolError("request has no messages");
  if (list.length > maxBatch)
    throw new ProtocolError(`request has ${list.length} messages; broker.submit.maxBatch is ${maxBatch}`);
  return { requestId, payloadBytes: payload.length, messages: list.map(decodeOne) };
}

function decodeOne(raw: unknown): DecodedRequest["messages"][number] {
  if (!isJsonObject(raw)) return { ok: false, id: "", problem: "each message must be a JSON object" };
  const id = typeof raw["id"] === "string" ? raw["id"] : "";
  if (id === "") return { ok: false, id, problem: "message 'id' is required (a UUIDv7; clients make one)" };
  if (typeof raw["topic"] !== "string") return { ok: false, id, problem: "message 'topic' must be a string" };
  if (!isJsonObject(raw["body"])) return { ok: false, id, problem: "message 'body' must be a JSON object" };
  const input: SubmittedInput = { id, topic: raw["topic"], body: raw["body"] };
  const via = raw["via"];
  if (via !== undefined) {
    if (!Array.isArray(via) || !via.every((v) => typeof v === "string"))
      return { ok: false, id, problem: "'via' must be a list of broker names" };
    input.via = via as string[];
  }
  if (raw["sent_at"] !== undefined) {
    if (typeof raw["sent_at"] !== "string")
      return { ok: false, id, problem: "'sent_at' must be an ISO 8601 string" };
    input.sentAt = raw["sent_at"];
  }
  if (raw["schema"] !== undefined) input.schema = String(raw["schema"]);
  if (raw["schema_version"] !== undefined) {
    if (typeof raw["schema_version"] !== "number")
      return { ok: false, id, problem: "'schema_version' must be a number" };
    input.schemaVersion = raw["schema_version"];
  }
  if (raw["headers"] !== undefined) {
    if (!isJsonObject(raw["headers"])) return { ok: false, id, problem: "'headers' must be an object" };
    input.headers = raw["headers"] as Headers;
  }
  if (raw["origin"] !== undefined) {
    if (!isJsonObject(raw["origin"])) return { ok: false, id, problem: "'origin' must be an object" };
    input.origin = raw["origin"] as Partial<Origin>;
  }
  return { ok: true, input };
}

export function encodeReply(requestId: Buffer, reply: SubmitReply): Frame[] {
  return [Buffer.from(SUBMIT_PROTOCOL), requestId, JSON.stringify(reply)];
}

export function encodeCommand(requestId: string, name: string, args: Record<string, unknown> = {}): Frame[] {
  return [Buffer.from(SUBMIT_PROTOCOL), Buffer.from(requestId), JSON.stringify({ command: name, args })];
}

export function errorReply(err: HeraldError): SubmitReply {
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
