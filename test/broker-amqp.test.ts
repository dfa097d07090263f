import { afterEach, describe, expect, it } from "vitest";
import { AmqpTransport } from "../src/transport/amqp.js";
import { Admin, AMQP_URL, uniq } from "./amqp-helpers.js";
import { collectIds, linkUp, startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";

let tb: TestBroker | undefined;
let admin: Admin | undefined;
afterEach(async () => {
  await tb?.stop();
  await admin?.close();
  tb = undefined;
  admin = undefined;
});

describe("broker with an AMQP sink", () => {
  it("every acknowledged message reaches a durable queue, in fedora-messaging format, while ZeroMQ fans out too", async () => {
    admin = await Admin.open();
    const exchange = await admin.exchange(uniq("herald-bx"));
    const queue = await admin.queue(uniq("herald-bq"), exchange, "org.#");
    const sink = new AmqpTransport({
      name: "rabbit",
      url: AMQP_URL,
      exchange,
      format: "fedora-messaging",
      log: () => {},
    });
    tb = await startTestBroker({ extraSinks: [sink] });
    const h = collectIds(tb.subscriber(["herald"]));
    const client = tb.client();
    await linkUp(client, [h.ids]);
    const acks = await client.publishBatch(
      Array.from({ length: 1000 }, (_, i) => ({ topic: "org.example.prod.app.done", body: { i } })),
    );
    const got = await admin.drain(queue, 1000);
    expect(acks.filter((a) => !got.has(a.id))).toEqual([]);
    expect(await waitFor(() => acks.every((a) => h.ids.includes(a.id)))).toBe(true);
    const m = await (async () => {
      await client.publish("org.example.prod.app.props", { x: 1 });
      for (let i = 0; i < 100; i++) {
        const r = await admin!.ch.get(queue, { noAck: true });
        if (r) return r;
        await new Promise((res) => setTimeout(res, 50));
      }
      return false;
    })();
    expect(m).not.toBe(false);
    if (m) {
      expect(m.properties.contentType).toBe("application/json");
      expect(m.properties.deliveryMode).toBe(2);
      expect(m.properties.headers?.["fedora_messaging_schema"]).toBe("base.message");
      expect(String(m.properties.headers?.["sent-at"])).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);
    }
  });

  it("shows unroutable messages in status and does not retry them forever", async () => {
    admin = await Admin.open();
    const exchange = await admin.exchange(uniq("herald-bx"));
    const sink = new AmqpTransport({ name: "rabbit", url: AMQP_URL, exchange, log: () => {} });
    tb = await startTestBroker({ extraSinks: [sink] });
    const client = tb.client();
    await client.publishBatch(Array.from({ length: 5 }, () => ({ topic: "nobody.listens", body: {} })));
    expect(
      await waitFor(() => {
        const s = tb!.broker.status().sinks.find((x) => x.name === "rabbit")!;
        return s.lag === 0 && (s.health.counters["returned"] ?? 0) >= 5;
      }),
    ).toBe(true);
    const s = tb.broker.status().sinks.find((x) => x.name === "rabbit")!;
    expect(s.health.lastError).toMatch(/unroutable|returned|no route/i);
  });

  it("a sink that is down never blocks submitters or the other sinks; status shows its backlog and error", async () => {
    const sink = new AmqpTransport({
      name: "dead",
      url: "amqp://guest:guest@127.0.0.1:1/%2F",
      connectTimeout: 500,
      log: () => {},
    });
    tb = await startTestBroker({ extraSinks: [sink] });
    const h = collectIds(tb.subscriber(["herald"]));
    const client = tb.client();
    await linkUp(client, [h.ids]);
    const acks = await client.publishBatch(
      Array.from({ length: 200 }, (_, i) => ({ topic: "down.test", body: { i } })),
    );
    expect(await waitFor(() => acks.every((a) => h.ids.includes(a.id)))).toBe(true);
    const s = tb.broker.status();
    const dead = s.sinks.find((x) => x.name === "dead")!;
    expect(dead.lag).toBeGreaterThanOrEqual(200);
    expect(dead.health.state).toBe("down");
    expect(dead.health.lastError ?? dead.lastError).toBeTruthy();
    expect(s.outbox.pendingMessages).toBeGreaterThanOrEqual(200);
    expect(s.sinks.find((x) => x.name === "herald")!.lag).toBe(0);
  });
});
