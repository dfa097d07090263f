import { ClosedError, type HeraldError, rejected, unencodable } from "../errors.js";
import { AsyncQueue } from "../util/queue.js";
import { decodeEnvelope, stampedEnvelopeText } from "../wire/herald.js";
import type { Message } from "../wire/message.js";
import { compilePatterns, matchesAny } from "../wire/topic.js";
import {
  bump,
  type Delivery,
  initialHealth,
  type ReceiveOptions,
  type Subscription,
  type Transport,
  type TransportHealth,
} from "./types.js";

/**
 * Defaults of a MemoryBus, chosen so that a test sees what production would do without being surprised
 * at the volumes unit tests send:
 * - `maxMessageBytes`: 4 MiB per envelope, ZeroMQ's default (DEFAULT_MAX_MESSAGE_BYTES in zeromq-common.ts,
 *   not imported: that module loads the native zeromq addon, which `herald/testing` must not need).
 * - `queueLimit`: 10,000 deliveries held per unread subscription, ZeroMQ's default high-water mark. Past it
 *   new messages are dropped for that subscription alone, as a PUB socket drops for one slow subscriber;
 *   an unread subscription no longer holds every message ever sent.
 * - `historyLimit`: the newest 10,000 messages are kept in `history`, enough for any assertion a unit
 *   test makes, bounded for a long-running test that floods the bus.
 */
export const MEMORY_BUS_DEFAULTS = {
  maxMessageBytes: 4 * 1024 * 1024,
  queueLimit: 10_000,
  historyLimit: 10_000,
} as const;

export interface MemoryBusOptions {
  /** Largest envelope (UTF-8 bytes of the herald wire form) a send accepts; bigger is TOO_LARGE. */
  maxMessageBytes?: number;
  /** Deliveries held per subscription before newer ones are dropped for it (counted, seen as a seq gap). */
  queueLimit?: number;
  /** Messages kept in `history`, the oldest dropped first; 0 keeps none. */
  historyLimit?: number;
}

/** One message as the bus carries it: the topic frame and the herald envelope text, as ZeroMQ would. */
interface Carried {
  topic: string;
  text: string;
  /** `memory:<sending transport's name>`: the analogue of a PUB socket's endpoint. */
  via: string;
}

/**
 * An in-process bus: every transport attached to the same `MemoryBus` sees what the others send.
 * For fast unit tests and for users' own tests. Not process-global: create one bus per test.
 *
 * Messages travel as herald envelope text, as on a ZeroMQ herald socket: a send encodes its whole batch
 * first (a message that cannot be encoded or is too large rejects the batch with a MessageRejectedError,
 * nothing delivered), and every subscriber decodes its own copy. A test therefore sees exactly what a
 * real subscriber would: a Date, BigInt or function in a body is refused as on ZeroMQ, not handed over
 * intact; an undefined field arrives absent; `raw` holds the envelope bytes.
 */
export class MemoryBus {
  private readonly subscribers = new Set<(c: Carried) => void>();
  private readonly kept: Message[] = [];
  /**
   * Envelopes sent since `history` was last read, decoded only when it is read: most sends are never
   * looked up there, and decoding each one at once cost a third of a send (one decode per subscriber is
   * what a real link costs too).
   */
  private unread: Carried[] = [];
  maxMessageBytes: number;
  queueLimit: number;
  historyLimit: number;

  constructor(options: MemoryBusOptions = {}) {
    this.maxMessageBytes = options.maxMessageBytes ?? MEMORY_BUS_DEFAULTS.maxMessageBytes;
    this.queueLimit = options.queueLimit ?? MEMORY_BUS_DEFAULTS.queueLimit;
    this.historyLimit = options.historyLimit ?? MEMORY_BUS_DEFAULTS.historyLimit;
  }

  transport(name = "memory"): MemoryTransport {
    return new MemoryTransport(name, this);
  }

  /** @internal */
  deliver(c: Carried): void {
    this.record(c);
    for (const s of this.subscribers) s(c);
  }

  /** @internal */
  attach(fn: (c: Carried) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /**
   * The newest messages sent on this bus (up to `historyLimit`), in order, as a subscriber to `#` decodes
   * them (an envelope it would skip is left out). One array, kept: tests may read or clear it.
   */
  get history(): Message[] {
    const { kept } = this;
    const limit = Math.max(0, this.historyLimit);
    // Only the newest `limit` can stay: older envelopes are not decoded at all.
    const newest = limit === 0 ? [] : this.unread.slice(-limit);
    for (const c of newest) {
      // Its size was checked when it was sent.
      const decoded = decodeCarried(c, Number.POSITIVE_INFINITY);
      if ("message" in decoded) kept.push(decoded.message);
    }
    this.unread = [];
    if (kept.length > limit) kept.splice(0, kept.length - limit);
    return kept;
  }

  /**
   * Trimmed in chunks, once `limit` more than needed wait (at most twice the limit undecoded), not at every
   * send: shift() turns O(n) once V8 keeps the array in large object space, and a history of 100,000 cost
   * 70 us per send that way.
   */
  private record(c: Carried): void {
    const limit = Math.max(0, this.historyLimit);
    if (limit === 0) return;
    this.unread.push(c);
    if (this.unread.length >= 2 * limit) this.unread.splice(0, this.unread.length - limit);
  }
}

/** Decode an envelope the way a ZeroMQ herald subscriber does; its problem instead of throwing. */
function decodeCarried(c: Carried, limit: number): { message: Message; raw: Buffer } | { problem: string } {
  const raw = Buffer.from(c.text, "utf8");
  try {
    const message = decodeEnvelope(raw, limit);
    // As zeromq-decode.ts: the frame a subscription matched must be the envelope's own topic.
    if (message.topic !== c.topic) return { problem: "topic frame differs from the envelope topic" };
    return { message, raw };
  } catch (err) {
    return { problem: err instanceof Error ? err.message : String(err) };
  }
}

export class MemoryTransport implements Transport {
  readonly kind = "memory";
  private readonly state: TransportHealth = initialHealth();
  /** Each open subscription's close: detaches it from the bus and ends its queue. */
  private readonly subs = new Set<() => Promise<void>>();
  private seq = 0;
  private readonly stream = `mem-${Math.random().toString(36).slice(2, 10)}`;

  constructor(
    readonly name: string,
    private readonly bus: MemoryBus,
  ) {}

  async open(): Promise<void> {
    if (this.state.state === "closed") throw this.closedError();
    this.state.state = "up";
  }

  async send(batch: readonly Message[]): Promise<void> {
    if (this.state.state === "closed") throw this.closedError();
    const carried = this.encode(batch);
    for (const c of carried) {
      this.bus.deliver(c);
      this.state.sent++;
    }
  }

  /** Stamp `seq`/`stream` and encode every message; all or nothing, so a refused batch burns no seq. */
  private encode(batch: readonly Message[]): Carried[] {
    const via = `memory:${this.name}`;
    const out: Carried[] = [];
    for (const m of batch)
      out.push({ topic: m.topic, text: this.envelope(m, this.seq + out.length + 1), via });
    this.seq += out.length;
    return out;
  }

  /** The envelope text a ZeroMQ herald PUB would write for `m`, refused as it would be. */
  private envelope(m: Message, seq: number): string {
    let text: string;
    try {
      if (typeof m.topic !== "string") throw new TypeError("the topic is not a string");
      text = stampedEnvelopeText(m, seq, this.stream);
    } catch (err) {
      bump(this.state, "unencodable");
      throw unencodable(m.id, "herald", err);
    }
    const limit = this.bus.maxMessageBytes;
    const size = Buffer.byteLength(text, "utf8");
    if (size > limit) {
      bump(this.state, "tooLarge");
      throw rejected(
        "TOO_LARGE",
        `message ${m.id} is ${size} bytes on the wire, the memory bus takes at most ${limit} (maxMessageBytes)`,
        { id: m.id, size, limit },
      );
    }
    return text;
  }

  receive(options: ReceiveOptions): Subscription {
    if (this.state.state === "closed") throw this.closedError();
    const patterns = compilePatterns(options.patterns);
    const limit = this.bus.queueLimit;
    const queue = new AsyncQueue<Delivery>(limit);
    const detach = this.bus.attach((c) => {
      if (!matchesAny(patterns, c.topic)) return;
      this.take(c, queue, limit);
    });
    const close = async (): Promise<void> => {
      detach();
      this.subs.delete(close);
      queue.close();
    };
    this.subs.add(close);
    return subscription(queue, close);
  }

  /**
   * One message for one subscription. A full queue drops it, before decoding, for that subscription
   * alone (a PUB socket at its high-water mark): counted in `deliveriesDropped`, and seen by a
   * `Subscriber` as a gap in the sender's `seq`. An envelope a ZeroMQ subscriber would skip is counted
   * as `malformed` and skipped.
   */
  private take(c: Carried, queue: AsyncQueue<Delivery>, limit: number): void {
    if (queue.size >= limit) {
      bump(this.state, "deliveriesDropped");
      return;
    }
    const decoded = decodeCarried(c, this.bus.maxMessageBytes);
    if (!("message" in decoded)) {
      bump(this.state, "malformed");
      return;
    }
    const { message, raw } = decoded;
    const ok = queue.push({ message, raw, via: c.via, format: "herald", ack: noop, nack: noop });
    if (ok) this.state.received++;
  }

  health(): TransportHealth {
    return structuredClone(this.state);
  }

  async close(): Promise<void> {
    this.state.state = "closed";
    // Detach too: a closed transport must stop counting and holding the bus's messages.
    await Promise.all([...this.subs].map((close) => close()));
  }

  private closedError(): HeraldError {
    return new ClosedError(`memory transport '${this.name}'`);
  }
}

const noop = async (): Promise<void> => {};

function subscription(queue: AsyncQueue<Delivery>, close: () => Promise<void>): Subscription {
  return {
    close,
    [Symbol.asyncIterator]: () => {
      const it = queue[Symbol.asyncIterator]();
      return {
        next: () => it.next(),
        return: async () => {
          await close();
          return { value: undefined, done: true };
        },
      };
    },
  };
}
