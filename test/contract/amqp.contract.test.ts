import { afterAll } from "vitest";
import { AmqpTransport } from "../../src/transport/amqp.js";
import type { Transport } from "../../src/transport/types.js";
import { Admin, AMQP_URL, uniq } from "../amqp-helpers.js";
import { type TransportPair, transportContract } from "./transport-contract.js";

const exchanges: string[] = [];

afterAll(async () => {
  const admin = await Admin.open();
  for (const e of exchanges) await admin.ch.deleteExchange(e).catch(() => {});
  await admin.close();
});

/** Sender and receiver on one fresh durable topic exchange; each receive() gets a temporary queue. */
function amqpPair(format: "herald" | "fedora-messaging") {
  return async (): Promise<TransportPair> => {
    const exchange = uniq(`contract-${format}`);
    exchanges.push(exchange);
    const make = (name: string, f: "herald" | "fedora-messaging" | "auto"): AmqpTransport =>
      new AmqpTransport({ name: uniq(name), url: AMQP_URL, exchange, format: f, log: () => {} });
    const sender = make("sender", format);
    const receiver = make("receiver", "auto");
    const made: Transport[] = [sender, receiver];
    return {
      sender,
      receiver,
      restartSender: async () => {
        const t = make("sender-restarted", format);
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
transportContract("amqp herald format", amqpPair("herald"), { format: "herald", sequenced: false });
transportContract("amqp fedora-messaging format", amqpPair("fedora-messaging"), {
  format: "fedora-messaging",
  sequenced: false,
});
