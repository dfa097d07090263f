/**
 * RabbitMQ outages under a running herald broker. Disrupts the RabbitMQ node: runs after the main suite,
 * one file at a time (scripts/test.sh), and always leaves RabbitMQ running.
 */
import { afterEach, describe, expect, it } from "vitest";
import { AmqpTransport, type AmqpTransportOptions } from "../src/transport/amqp.js";
import { ThreadedAmqpSink } from "../src/transport/amqp-thread.js";
import { Admin, AMQP_URL, rabbitmqctl, uniq } from "./amqp-helpers.js";
import { collectIds, linkUp, startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";

let tb: TestBroker | undefined;
let admin: Admin | undefined;
/**
 * Queues and exchanges to delete at the end: the admin connection that declared them dies with a RabbitMQ
 * restart, and with it the list it kept.
 */
const queues: string[] = [];
const exchanges: string[] = [];
afterEach(async () => {
  await rabbitmqctl("start_app").catch(() => {});
  await rabbitmqctl("await_startup").catch(() => {});
  await tb?.stop();
  for (const q of queues.splice(0)) await admin?.ch.deleteQueue(q).catch(() => {});
  for (const e of exchanges.splice(0)) await admin?.ch.deleteExchange(e).catch(() => {});
  await admin?.close().catch(() => {});
  tb = undefined;
  admin = undefined;
});

/** threaded: the sink a configured broker uses by default (its own thread); else on the broker's thread. */
async function setup(threaded = true): Promise<{ queue: string; tb: TestBroker }> {
  admin = await Admin.open();
  const exchange = await admin.exchange(uniq("herald-fx"));
  exchanges.push(exchange);
  const queue = await admin.queue(uniq("herald-fq"), exchange, "#");
  queues.push(queue);
  const o: AmqpTransportOptions = { name: "rabbit", url: AMQP_URL, exchange, heartbeat: 5000, log: () => {} };
  const sink = threaded ? new ThreadedAmqpSink(o) : new AmqpTransport(o);
  tb = await startTestBroker({ extraSinks: [sink] });
  return { queue, tb };
}

describe("RabbitMQ outages under the broker", () => {
  it.each([
    ["on its own thread", true],
    ["on the broker's thread", false],
  ])(
    "restart in the middle of a 10,000-message burst, sink %s: every acknowledged submission reaches the durable queue",
    {
      timeout: 240_000,
    },
    async (_where, threaded) => {
      const { queue, tb } = await setup(threaded);
      const client = tb.client();
      const acked: string[] = [];
      const burst = (async () => {
        for (let i = 0; i < 100; i++) {
          const acks = await client.publishBatch(
            Array.from({ length: 100 }, (_, k) => ({ topic: "fault.restart", body: { i, k } })),
          );
          acked.push(...acks.map((a) => a.id));
        }
      })();
      await waitFor(() => acked.length >= 2000, 60_000);
      await rabbitmqctl("stop_app");
      await new Promise((r) => setTimeout(r, 2000));
      await rabbitmqctl("start_app");
      await rabbitmqctl("await_startup");
      await burst;
      expect(acked).toHaveLength(10_000);
      expect(
        await waitFor(() => tb.broker.status().sinks.find((s) => s.name === "rabbit")!.lag === 0, 120_000),
      ).toBe(true);
      admin = await Admin.open(); // the old admin connection died with the restart
      const got = await admin.drain(queue, 10_000);
      const lost = acked.filter((id) => !got.has(id));
      const dups = [...got.values()].filter((n) => n > 1).length;
      const rabbit = tb.broker.status().sinks.find((s) => s.name === "rabbit")!;
      console.log(
        `rabbit restart: acked ${acked.length}, distinct in queue ${got.size}, lost ${lost.length}, duplicated ids ${dups}, republished ${rabbit.health.counters["republished"] ?? 0}, reconnects ${rabbit.health.counters["reconnects"] ?? 0}`,
      );
      expect(lost).toEqual([]);
    },
  );

  it("stopped for 30 s: submissions stay acknowledged, status shows backlog and error, ZeroMQ sees no pause, all drains after", {
    timeout: 240_000,
  }, async () => {
    const { queue, tb } = await setup();
    const h = collectIds(tb.subscriber(["herald"]));
    const client = tb.client();
    await linkUp(client, [h.ids]);
    await rabbitmqctl("stop_app");
    const duringOutage: string[] = [];
    const started = Date.now();
    let sawBacklog = false;
    while (Date.now() - started < 30_000) {
      const acks = await client.publishBatch(
        Array.from({ length: 20 }, (_, k) => ({ topic: "fault.outage", body: { k } })),
      );
      duringOutage.push(...acks.map((a) => a.id));
      const s = tb.broker.status().sinks.find((x) => x.name === "rabbit")!;
      if (s.lag > 0 && (s.lastError ?? s.health.lastError) && s.health.state !== "up") sawBacklog = true;
      await new Promise((r) => setTimeout(r, 100));
    }
    // ZeroMQ subscribers got the outage's messages while RabbitMQ was still down.
    expect(await waitFor(() => duringOutage.every((id) => h.ids.includes(id)), 10_000)).toBe(true);
    expect(tb.broker.status().sinks.find((x) => x.name === "rabbit")!.lag).toBeGreaterThan(0);
    expect(sawBacklog).toBe(true);
    await rabbitmqctl("start_app");
    await rabbitmqctl("await_startup");
    expect(
      await waitFor(() => tb.broker.status().sinks.find((s) => s.name === "rabbit")!.lag === 0, 120_000),
    ).toBe(true);
    admin = await Admin.open();
    const got = await admin.drain(queue, duringOutage.length);
    expect(duringOutage.filter((id) => !got.has(id))).toEqual([]);
  });
});
