import type { MessageTrace } from "../broker/commands.js";
import { errorFromWire, type HeraldError, ProtocolError, toHeraldError } from "../errors.js";
import type { Identity } from "../security/keys.js";
import { signMessage } from "../security/sign.js";
import type { JsonObject, JsonShaped, NotArray } from "../wire/json.js";
import { createMessage, DEFAULT_MAX_BODY_BYTES, type Message, type MessageInput } from "../wire/message.js";
import {
  encodeCommand,
  encodeSubmitParts,
  encodeSubmitted,
  type SubmitReply,
  type SubmitResult,
} from "../wire/submit.js";
import { Coalescer } from "./coalesce.js";
import { oversized, refusedBatchLimit, requestLimit } from "./limits.js";
import { Requester } from "./requester.js";

export interface ClientOptions {
  /** Submit endpoint, e.g. `ipc:///run/herald/submit.sock` or `tcp://broker:9939`. Default: from configuration. */
  endpoint?: string;
  /** Per-try timeout (ms); default 2500. */
  timeoutMs?: number;
  /** Tries after the first; default 3 (Lazy Pirate: same ids every time). */
  retries?: number;
  /**
   * The broker's limits.maxBodyBytes (default 1 MiB): bounds each body, and each request to the broker's
   * 4 × maxBodyBytes + 1 MiB (a larger message is refused TOO_LARGE here; sent, it would get no reply).
   */
  maxBodyBytes?: number;
  /**
   * Messages per request; default 1000 (the broker's default maxBatch). When the broker refuses a request
   * for its lower broker.submit.maxBatch, the client splits it and keeps to the broker's limit afterwards.
   */
  maxBatch?: number;
  /** Extra Dealer socket options. */
  socketOptions?: Record<string, unknown>;
  /**
   * CURVE to a broker's tcp:// submit endpoint: our identity and the broker's CURVE public key (Z85).
   * Each socket gets a fresh signed routing id, from which the broker learns who we are.
   */
  curve?: { identity: Identity; serverKey: string };
  /** Sign every message built by publish/publishMany/publishBatch with this identity (once per message). */
  sign?: Identity;
}

/** The broker's acknowledgement: the message is durably stored. */
export interface Ack {
  id: string;
  /** Position in the broker's outbox. */
  seq: number;
  acceptedAt: string;
  /** True when the broker already had this id (a retry): stored and published once. */
  duplicate: boolean;
}

export type PublishOptions = Omit<MessageInput, "topic" | "body">;

/**
 * Each input's body checked as JSON on its own (JsonShaped), so one call may mix body types: a single type
 * parameter for the body would be inferred from the first input and refuse the others.
 */
export type JsonInputs<I extends readonly MessageInput<unknown>[]> = {
  readonly [K in keyof I]: MessageInput<JsonShaped<I[K]["body"]> & NotArray>;
};

/**
 * Publishes to the local herald broker. Connects lazily; any number of concurrent callers share one
 * DEALER socket (requests are matched by id). A request that times out is sent again with the SAME
 * message ids on a fresh socket, so the broker's dedup window makes retries safe (see Requester).
 */
export class HeraldClient {
  private readonly requester: Requester;
  private readonly coalescer: Coalescer<Ack | HeraldError>;
  /** Messages per request: our maxBatch, lowered to the broker's when it refuses more. */
  private maxBatch: number;
  /** Bytes of the largest request the broker reads (its socket's maxMessageSize). */
  private readonly maxRequestBytes: number;
  readonly endpoint: string;

  constructor(private readonly opts: ClientOptions & { endpoint: string }) {
    this.endpoint = opts.endpoint;
    this.requester = new Requester({
      endpoint: opts.endpoint,
      timeoutMs: opts.timeoutMs ?? 2500,
      retries: opts.retries ?? 3,
      socketOptions: opts.socketOptions,
      curve: opts.curve,
    });
    this.maxBatch = opts.maxBatch ?? 1000;
    this.maxRequestBytes = requestLimit(opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
    this.coalescer = new Coalescer((parts) => this.sendParts(parts), this.maxBatch);
  }

  /**
   * Publish one message; resolves with the broker's acknowledgement or throws a typed HeraldError. The
   * body is a JsonObject (first overload: code generic over `T extends JsonObject` keeps compiling) or an
   * app's own type whose fields are JSON (JsonShaped: an interface needs no cast).
   */
  publish(topic: string, body: JsonObject, options?: PublishOptions): Promise<Ack>;
  publish<B extends object & JsonShaped<B> & NotArray>(
    topic: string,
    body: B,
    options?: PublishOptions,
  ): Promise<Ack>;
  async publish(topic: string, body: object, options: PublishOptions = {}): Promise<Ack> {
    const [result] = await this.publishMany([{ ...options, topic, body: body as JsonObject }]);
    const r = result!;
    if (r instanceof Error) throw r;
    return r;
  }

  /** Publish many; every message's outcome is returned in order (an Ack or a HeraldError), nothing thrown per message. */
  publishMany(inputs: readonly MessageInput[]): Promise<Array<Ack | HeraldError>>;
  publishMany<I extends readonly MessageInput<unknown>[]>(
    inputs: I & JsonInputs<I>,
  ): Promise<Array<Ack | HeraldError>>;
  async publishMany(inputs: readonly MessageInput<unknown>[]): Promise<Array<Ack | HeraldError>> {
    const maxBody = this.opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const sign = this.opts.sign;
    const out: Array<Ack | HeraldError> = new Array(inputs.length);
    const messages: Message[] = [];
    const slots: number[] = [];
    inputs.forEach((input, i) => {
      try {
        const m = createMessage(input as MessageInput, maxBody);
        // Signed once here: every retry resends the same bytes, so the broker's dedup sees one message.
        messages.push(sign ? signMessage(m, sign) : m);
        slots.push(i);
      } catch (err) {
        out[i] = toHeraldError(err, "INVALID"); // this one is refused; the others still go
      }
    });
    if (messages.length === 0) return out;
    const results = await this.submit(messages);
    results.forEach((r, k) => {
      out[slots[k]!] = r;
    });
    return out;
  }

  /** Like publishMany but throws the first error (after all were tried). */
  publishBatch(inputs: readonly MessageInput[]): Promise<Ack[]>;
  publishBatch<I extends readonly MessageInput<unknown>[]>(inputs: I & JsonInputs<I>): Promise<Ack[]>;
  async publishBatch(inputs: readonly MessageInput<unknown>[]): Promise<Ack[]> {
    const results = await this.publishMany(inputs as readonly MessageInput[]);
    const err = results.find((r): r is HeraldError => r instanceof Error);
    if (err) throw err;
    return results as Ack[];
  }

  /**
   * Submit already-built messages as they are, signed or not (forwarding, replay, the shim). Submits made
   * by concurrent callers in the same tick share requests (see Coalescer); more than maxBatch messages go
   * in consecutive requests of their own. A message too big for any request gets TOO_LARGE in its slot.
   */
  async submit(messages: readonly Message[]): Promise<Array<Ack | HeraldError>> {
    const { parts, refused: unencodable } = encodeEach(messages);
    const refused = mergeRefusals(unencodable, oversized(messages, parts, this.maxRequestBytes));
    if (refused === undefined) return this.submitParts(parts);
    const out = refused as Array<Ack | HeraldError>;
    const slots = [...out.keys()].filter((i) => refused[i] === undefined);
    const results = slots.length > 0 ? await this.submitParts(slots.map((i) => parts[i]!)) : [];
    results.forEach((r, k) => {
      out[slots[k]!] = r;
    });
    return out;
  }

  private async submitParts(parts: string[]): Promise<Array<Ack | HeraldError>> {
    if (this.coalescer.fits(parts.length)) return this.coalescer.add(parts);
    const out: Array<Ack | HeraldError> = [];
    for (const chunk of chunks(parts, this.maxBatch)) out.push(...(await this.coalescer.add(chunk)));
    return out;
  }

  private async sendParts(parts: string[]): Promise<Array<Ack | HeraldError>> {
    const reply = await this.requester.request((rid) => encodeSubmitParts(rid, parts));
    const limit = refusedBatchLimit(reply, parts.length);
    if (limit === undefined) return outcomes(reply, parts.length);
    // The broker's broker.submit.maxBatch is lower than ours: it refused the whole request and stored
    // nothing. Keep to its limit from now on and send these again in requests it takes.
    this.maxBatch = Math.min(this.maxBatch, limit);
    this.coalescer.limit(limit);
    const sent = await Promise.all(chunks(parts, limit).map((c) => this.sendParts(c)));
    return sent.flat();
  }

  /** Ask the broker for its status (outbox depth, sinks' lag and errors). */
  async status(): Promise<unknown> {
    return this.command("status");
  }

  /** Ask the broker where the message with this id went: stored or not, and each sink's standing with it. */
  async trace(id: string): Promise<MessageTrace> {
    return (await this.command("trace", { id })) as MessageTrace;
  }

  async command(name: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const reply = await this.requester.request((rid) => encodeCommand(rid, name, args));
    if ("error" in reply) throw errorFromWire(reply.error);
    if ("result" in reply) return reply.result;
    throw new ProtocolError("broker answered a command with submit results");
  }

  async close(): Promise<void> {
    this.requester.close();
  }
}

function chunks(parts: string[], size: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < parts.length; i += size) out.push(parts.slice(i, i + size));
  return out;
}

/** One outcome per message of a submit request: its result, or the request's error for every message. */
function outcomes(reply: SubmitReply, count: number): Array<Ack | HeraldError> {
  if ("error" in reply) return new Array<HeraldError>(count).fill(errorFromWire(reply.error));
  if ("results" in reply) return reply.results.map(toOutcome);
  throw new ProtocolError("broker answered a submit with a command result");
}

/** What a caller sees of one submit result: an Ack, or the typed error. */
export function toOutcome(r: SubmitResult): Ack | HeraldError {
  if (r.ok) return { id: r.id, seq: r.seq, acceptedAt: r.accepted_at, duplicate: r.duplicate };
  return errorFromWire({ ...r.error, details: { id: r.id } });
}

/**
 * Each message encoded for a request; one that cannot be (a hand-built body holding undefined, a Date...)
 * gets its error in its own slot, as TOO_LARGE does, and the others still go.
 */
function encodeEach(messages: readonly Message[]): {
  parts: string[];
  refused?: Array<HeraldError | undefined>;
} {
  const parts: string[] = new Array(messages.length);
  let refused: Array<HeraldError | undefined> | undefined;
  for (let i = 0; i < messages.length; i++) {
    try {
      parts[i] = encodeSubmitted(messages[i]!);
    } catch (err) {
      refused ??= new Array<HeraldError | undefined>(messages.length);
      refused[i] = toHeraldError(err, "INVALID");
      parts[i] = ""; // never sent: its slot is refused
    }
  }
  return refused === undefined ? { parts } : { parts, refused };
}

function mergeRefusals(
  a: Array<HeraldError | undefined> | undefined,
  b: Array<HeraldError | undefined> | undefined,
): Array<HeraldError | undefined> | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  b.forEach((e, i) => {
    if (e !== undefined) a[i] = e;
  });
  return a;
}
