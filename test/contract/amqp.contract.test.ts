import { afterAll } from "vitest";
import { AmqpTransport } from "../../src/transport/amqp.js";
import { ThreadedAmqpSink } from "../../src/transport/amqp-thread.js";
import type { Transport } from "../../src/transport/types.js";
import { Admin, AMQP_URL, uniq } from "../amqp-helpers.js";
import { type TransportPair, transportContract } from "./transport-contract.js";

const exchanges: string[] = [];

afterAll(async () => {
  const admin = await Admin.open();
  for (const e of exchanges) await admin.ch.deleteExchange(e).catch(() => {});
  await admin.close();
});

/**
 * Sender and receiver on one fresh durable topic exchange; each receive() gets a temporary queue.
 * `threaded`: the sender is the broker's default AMQP sink, publishing from a worker thread.
 */
function amqpPair(format: "herald" | "fedora-messaging", threaded = false) {
  return async (): Promise<TransportPair> => {
    const exchange = uniq(`contract-${format}`);
    exchanges.push(exchange);
    const make = (name: string, f: "herald" | "fedora-messaging" | "auto"): AmqpTransport =>
      new AmqpTransport({ name: uniq(name), url: AMQP_URL, exchange, format: f, log: () => {} });
    const makeSender = (name: string): Transport =>
      threaded
        ? new ThreadedAmqpSink({ name: uniq(name), url: AMQP_URL, exchange, format, log: () => {} })
        : make(name, format);
    const sender = makeSender("sender");
    const receiver = make("receiver", "auto");
    const made: Transport[] = [sender, receiver];
    return {
      sender,
      receiver,
      restartSender: async () => {
        const t = makeSender("sender-restarted");
        made.push(t);
        return t;
      },
      cleanup: async () => {
        for (const t of made) await t.close();
      },
    };
  };
}

// AMQP publishers do not number messages (seq/stream): the route is durable and confirmed, not lossy.
for (const format of ["herald", "fedora-messaging"] as const) {
  transportContract(`amqp ${format} format`, amqpPair(format), { format, sequenced: false });
  transportContract(`amqp ${format} format, threaded sink`, amqpPair(format, true), {
    format,
    sequenced: false,
  });
}
