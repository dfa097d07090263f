import { ClosedError, HeraldError } from "../errors.js";
import { AsyncQueue } from "../util/queue.js";
import type { Message } from "../wire/message.js";
import { compilePatterns, matchesAny } from "../wire/topic.js";
import {
  type Delivery,
  initialHealth,
  type ReceiveOptions,
  type Subscription,
  type Transport,
  type TransportHealth,
} from "./types.js";

/**
 * An in-process bus: every transport attached to the same `MemoryBus` sees what the others send.
 * For fast unit tests and for users' own tests. Not process-global: create one bus per test.
 */
export class MemoryBus {
  private readonly subscribers = new Set<(m: Message) => void>();
  /** Every message ever sent on this bus, in order (handy for assertions). */
  readonly history: Message[] = [];
  /** Largest body accepted, mirroring a broker limit; Infinity by default. */
  maxMessageBytes = Number.POSITIVE_INFINITY;

  transport(name = "memory"): MemoryTransport {
    return new MemoryTransport(name, this);
  }

  /** @internal */
  deliver(m: Message): void {
    // A copy: a sender that reuses or mutates its body object afterwards must not rewrite history.
    this.history.push(structuredClone(m));
    for (const s of this.subscribers) s(structuredClone(m));
  }

  /** @internal */
  attach(fn: (m: Message) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
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
    if (this.state.state === "closed") throw new ClosedError(`memory transport '${this.name}'`);
    this.state.state = "up";
  }

  async send(batch: readonly Message[]): Promise<void> {
    if (this.state.state === "closed") throw new ClosedError(`memory transport '${this.name}'`);
    for (const m of batch) {
      const size = Buffer.byteLength(JSON.stringify(m.body));
      if (size > this.bus.maxMessageBytes)
        throw new HeraldError(
          "TOO_LARGE",
          `message ${m.id} is ${size} bytes, the bus takes ${this.bus.maxMessageBytes}`,
        );
    }
    for (const m of batch) {
      this.bus.deliver({ ...m, seq: ++this.seq, stream: this.stream });
      this.state.sent++;
    }
  }

  receive(options: ReceiveOptions): Subscription {
    if (this.state.state === "closed") throw new ClosedError(`memory transport '${this.name}'`);
    const patterns = compilePatterns(options.patterns);
    const queue = new AsyncQueue<Delivery>();
    const detach = this.bus.attach((message) => {
      if (!matchesAny(patterns, message.topic)) return;
      this.state.received++;
      queue.push({
        message,
        via: `memory:${this.name}`,
        format: "herald",
        ack: async () => {},
        nack: async () => {},
      });
    });
    const close = async (): Promise<void> => {
      detach();
      this.subs.delete(close);
      queue.close();
    };
    this.subs.add(close);
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

  health(): TransportHealth {
    return structuredClone(this.state);
  }

  async close(): Promise<void> {
    this.state.state = "closed";
    // Detach too: a closed transport must stop counting and holding the bus's messages.
    await Promise.all([...this.subs].map((close) => close()));
  }
}
