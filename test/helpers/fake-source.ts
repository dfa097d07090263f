import type { Delivery, Subscription, Transport, TransportHealth } from "../../src/transport/types.js";
import { AsyncQueue } from "../../src/util/queue.js";
import { createMessage, type Message } from "../../src/wire/message.js";

/** A source (an AMQP one, to the code under test) whose deliveries the test pushes; acks and nacks are recorded by message id. */
export function fakeSource(): {
  source: Transport;
  push(m: Message): void;
  acked: string[];
  nacked: string[];
} {
  const queue: Delivery[] = [];
  const acked: string[] = [];
  const nacked: string[] = [];
  let wake: (() => void) | undefined;
  let closed = false;
  const sub = {
    async *[Symbol.asyncIterator]() {
      while (!closed) {
        const d = queue.shift();
        if (d) yield d;
        else await new Promise<void>((r) => (wake = r));
      }
    },
    close: async () => {
      closed = true;
      wake?.();
    },
  } as unknown as Subscription;
  const source = {
    name: "fake",
    kind: "amqp",
    open: async () => {},
    close: async () => {},
    send: async () => {},
    receive: () => sub,
    health: () => ({}),
  } as unknown as Transport;
  const push = (message: Message): void => {
    queue.push({
      message,
      ack: async () => void acked.push(message.id),
      nack: async () => void nacked.push(message.id),
    } as unknown as Delivery);
    wake?.();
  };
  return { source, push, acked, nacked };
}

/** A source whose deliveries the test scripts by hand (sequence numbers with holes, repeats, restarts). */
export class ScriptedSource implements Transport {
  readonly kind = "scripted";
  readonly queue = new AsyncQueue<Delivery>();
  constructor(readonly name = "scripted") {}
  async open(): Promise<void> {}
  async send(): Promise<void> {}
  push(topic: string, seq: number, stream = "s1", id?: string): void {
    const message = { ...createMessage({ topic, body: { seq } }), seq, stream, ...(id ? { id } : {}) };
    this.queue.push({ message, via: this.name, format: "herald", ack: async () => {}, nack: async () => {} });
  }
  /** A legacy-format copy: no seq or stream, the id as the legacy socket writes it. */
  pushLegacy(topic: string, id: string, n: number): void {
    const message = { ...createMessage({ topic, body: { seq: n } }), id };
    this.queue.push({ message, via: this.name, format: "legacy", ack: async () => {}, nack: async () => {} });
  }
  /** The socket goes away: the subscription fails. */
  fail(): void {
    this.queue.close(new Error("socket went away"));
  }
  receive(): Subscription {
    return {
      close: async () => this.queue.close(),
      [Symbol.asyncIterator]: () => this.queue[Symbol.asyncIterator](),
    };
  }
  health(): TransportHealth {
    return { state: "up", sent: 0, received: 0, counters: {} };
  }
  async close(): Promise<void> {
    this.queue.close();
  }
}
