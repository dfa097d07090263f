import type { Delivery, Subscription, Transport } from "../../src/transport/types.js";
import type { Message } from "../../src/wire/message.js";

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
