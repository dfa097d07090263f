import type { Channel, ChannelModel } from "amqplib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AmqpTransport, resolveAmqpOptions } from "../src/transport/amqp.js";
import { AmqpSubscription } from "../src/transport/amqp-consumer.js";
import { AmqpSession } from "../src/transport/amqp-session.js";
import { initialHealth } from "../src/transport/types.js";
import { Admin, AMQP_URL, FM_PROPS, uniq, waitFor } from "./amqp-helpers.js";

let admin: Admin;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  admin = await Admin.open();
});

afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  await admin.close();
});

describe("AMQP source (review)", () => {
  it("closes the consumer it was setting up when close() ran meanwhile: no messages held for nobody", async () => {
    const exchange = await admin.exchange(uniq("ex"));
    const queue = await admin.queue(uniq("q"), exchange, "review.#");
    for (let i = 0; i < 5; i++)
      admin.ch.publish(exchange, "review.x", Buffer.from("{}"), { ...FM_PROPS, messageId: `m${i}` });
    await waitFor("5 messages queued", async () => (await admin.depth(queue)) === 5);
    const o = resolveAmqpOptions({ name: uniq("c"), url: AMQP_URL, exchange, queue, log: () => {} });
    const health = initialHealth();
    const session = new AmqpSession(o, health);
    cleanups.push(() => session.close());
    await session.start();
    let sub: AmqpSubscription | undefined;
    let consumed = false;
    const model = session.model as ChannelModel;
    const create = model.createChannel.bind(model);
    model.createChannel = async () => {
      const ch = await create();
      const consume = ch.consume.bind(ch);
      // close() lands between basic.consume and the end of the setup.
      ch.consume = async (...args: Parameters<Channel["consume"]>) => {
        const r = await consume(...args);
        void sub?.close();
        consumed = true;
        return r;
      };
      return ch;
    };
    sub = new AmqpSubscription(o, session, health, { patterns: ["review.#"], manualAck: true }, () => {});
    await waitFor("the setup to have consumed", () => consumed);
    await waitFor(
      "no consumer left on the queue and the 5 messages ready again",
      async () => {
        const q = await admin.ch.checkQueue(queue);
        return q.consumerCount === 0 && q.messageCount === 5;
      },
      10_000,
    );
  });

  it("receive() without a format takes native fedora-messaging messages (format auto by default)", async () => {
    expect(resolveAmqpOptions({ name: "n", url: AMQP_URL }).format).toBe("auto");
    const exchange = uniq("ex");
    admin.track(exchange);
    const t = new AmqpTransport({ name: uniq("t"), url: AMQP_URL, exchange, log: () => {} });
    cleanups.push(() => t.close());
    const sub = t.receive({ patterns: ["review.#"] });
    await sub.whenReady();
    admin.ch.publish(exchange, "review.fm", Buffer.from('{"a":1}'), {
      ...FM_PROPS,
      messageId: "fm-native-1",
    });
    const next = sub[Symbol.asyncIterator]().next();
    const r = await Promise.race([
      next,
      new Promise<"pending">((res) => setTimeout(() => res("pending"), 10_000)),
    ]);
    expect(r, `malformed: ${t.health().counters["malformed"]}, ${t.health().lastError}`).not.toBe("pending");
    if (r === "pending" || r.done) throw new Error("no delivery");
    expect(r.value.format).toBe("fedora-messaging");
    expect(r.value.message).toMatchObject({ id: "fm-native-1", topic: "review.fm", body: { a: 1 } });
    expect(t.health().counters["malformed"]).toBe(0);
  });
});
