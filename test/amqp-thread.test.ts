import type { Worker } from "node:worker_threads";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildSinks } from "../src/broker/from-config.js";
import { loadConfigText } from "../src/config/load.js";
import { MessageRejectedError } from "../src/errors.js";
import { AmqpTransport } from "../src/transport/amqp.js";
import type { AmqpTransportOptions } from "../src/transport/amqp-options.js";
import { ThreadedAmqpSink } from "../src/transport/amqp-thread.js";
import { createLogger } from "../src/util/log.js";
import { FM_CONTENT_TYPE, HERALD_CONTENT_TYPE } from "../src/wire/fedora-messaging.js";
import { encodeEnvelope } from "../src/wire/herald.js";
import { Admin, AMQP_URL, makeMessages, uniq } from "./amqp-helpers.js";

let admin: Admin;
const sinks: ThreadedAmqpSink[] = [];

function sink(o: Partial<AmqpTransportOptions> & { exchange: string }): ThreadedAmqpSink {
  const t = new ThreadedAmqpSink({ name: uniq("thread"), url: AMQP_URL, log: () => {}, ...o });
  sinks.push(t);
  admin.track(o.exchange);
  return t;
}

/** The worker thread behind a sink (private): the tests kill it to stand for a crash. */
const workerOf = (t: ThreadedAmqpSink): Worker | undefined => (t as unknown as { worker?: Worker }).worker;

beforeEach(async () => {
  admin = await Admin.open();
});

afterEach(async () => {
  for (const t of sinks.splice(0)) await t.close();
  await admin.close();
});

describe("ThreadedAmqpSink", () => {
  it("publishes the herald format from its thread: the envelope bytes, confirmed, counted", async () => {
    const exchange = uniq("ex");
    const t = sink({ exchange });
    await t.open();
    const q = await admin.queue(uniq("q"), exchange);
    const msgs = makeMessages(600);
    await t.send(msgs);
    // Read right after send: the reply carries the worker's health.
    expect(t.health()).toMatchObject({ state: "up", sent: 600 });
    const first = await admin.ch.get(q, { noAck: true });
    if (first === false) throw new Error("queue is empty");
    expect(first.properties).toMatchObject({
      contentType: HERALD_CONTENT_TYPE,
      deliveryMode: 2,
      messageId: msgs[0]!.id,
    });
    expect(first.fields.routingKey).toBe(msgs[0]!.topic);
    expect(first.content.equals(encodeEnvelope(msgs[0]!))).toBe(true);
    const rest = await admin.drain(q, 599);
    expect([...rest.keys()].sort()).toEqual(
      msgs
        .slice(1)
        .map((m) => m.id)
        .sort(),
    );
  });

  it("publishes the fedora-messaging format with its prefix and headers", async () => {
    const exchange = uniq("ex");
    const t = sink({ exchange, format: "fedora-messaging", topicPrefix: "org.fedoraproject.prod" });
    await t.open();
    const q = await admin.queue(uniq("q"), exchange);
    const [m] = makeMessages(1, "bodhi.update.comment", { headers: { severity: "warning", users: "alice" } });
    await t.send([m!]);
    const got = await admin.ch.get(q, { noAck: true });
    if (got === false) throw new Error("queue is empty");
    expect(got.fields.routingKey).toBe("org.fedoraproject.prod.bodhi.update.comment");
    expect(got.properties.contentType).toBe(FM_CONTENT_TYPE);
    expect(got.properties.headers).toMatchObject({
      fedora_messaging_severity: 30,
      fedora_messaging_user_alice: true,
      herald_topic: "bodhi.update.comment",
    });
    expect(JSON.parse(got.content.toString("utf8"))).toEqual(m!.body);
  });

  it("warns once when a topic already begins with the sink's topicPrefix (a routing key that repeats it), on either thread", async () => {
    for (const threaded of [true, false]) {
      const exchange = uniq("ex");
      const warnings: string[] = [];
      const log: AmqpTransportOptions["log"] = (level, message) => {
        if (level === "warn" && message.includes("already begins with")) warnings.push(message);
      };
      const o = { exchange, topicPrefix: "org.fedoraproject.prod", log };
      const t = threaded ? sink(o) : new AmqpTransport({ name: uniq("t"), url: AMQP_URL, ...o });
      if (!threaded) admin.track(exchange);
      try {
        await t.open();
        await t.send(makeMessages(2, "bodhi.update")); // not repeated: no warning
        expect(warnings, `threaded ${threaded}: ${warnings.join(" / ")}`).toEqual([]);
        await t.send(makeMessages(3, "org.fedoraproject.prod.bodhi.update"));
        await t.send(makeMessages(1, "org.fedoraproject.prod.koji.build"));
        expect(warnings, `threaded ${threaded}`).toHaveLength(1);
        expect(warnings[0]).toMatch(
          /routing key is org\.fedoraproject\.prod\.org\.fedoraproject\.prod\.bodhi\.update .*topicPrefix to ""/,
        );
      } finally {
        if (!threaded) await t.close();
      }
    }
  });

  it("refuses a message amqplib cannot encode (a header name over 255 bytes) with MessageRejectedError, on either thread", async () => {
    for (const threaded of [true, false]) {
      const exchange = uniq("ex");
      const o = { exchange, format: "fedora-messaging" as const, topicPrefix: "org.example" };
      const t = threaded
        ? sink(o)
        : new AmqpTransport({ name: uniq("t"), url: AMQP_URL, log: () => {}, ...o });
      if (!threaded) admin.track(exchange);
      try {
        await t.open();
        const q = await admin.queue(uniq("q"), exchange);
        const [good, bad] = makeMessages(2, "app.event");
        bad!.headers = { ["h".repeat(300)]: 1 };
        const err = await t.send([good!, bad!]).catch((e: unknown) => e);
        expect(err, `threaded ${threaded}`).toBeInstanceOf(MessageRejectedError);
        expect(err).toMatchObject({ code: "INVALID", retryable: false });
        expect(String((err as Error).message)).toContain(bad!.id);
        // The channel is fine: the good one was confirmed, and the next send goes through.
        await t.send([good!]);
        const seen = await admin.drain(q, 1);
        expect([...seen.keys()]).toEqual([good!.id]);
        expect(t.health().counters["unencodable"]).toBe(1);
      } finally {
        if (!threaded) await t.close();
      }
    }
  });

  it("fails sends pending on a dead thread as retryable TRANSPORT; the resend on a new thread loses nothing", async () => {
    const exchange = uniq("ex");
    const t = sink({ exchange });
    await t.open();
    const q = await admin.queue(uniq("q"), exchange);
    const msgs = makeMessages(2000, undefined, {}, 512);
    const first = t.send(msgs);
    await workerOf(t)!.terminate();
    await expect(first).rejects.toMatchObject({ code: "TRANSPORT", retryable: true });
    expect(t.health().state).toBe("down");
    expect(t.health().counters["threadRestarts"]).toBe(1);
    await t.send(msgs); // what the outbox dispatcher does after a failed page
    expect(t.health().state).toBe("up");
    const seen = await admin.drain(q, 2000);
    expect(seen.size).toBe(2000);
    for (const m of msgs) expect(seen.has(m.id)).toBe(true);
  });

  it("rejects refused credentials as non-retryable, naming the fix, as AmqpTransport does", async () => {
    const t = sink({ exchange: uniq("ex"), url: "amqp://guest:wrong@127.0.0.1:5672/%2F" });
    await expect(t.open()).rejects.toThrow(/refused the connection.*check the user, password/);
    await expect(t.send(makeMessages(1))).rejects.toMatchObject({ code: "TRANSPORT", retryable: false });
  });

  it("rejects a batch it cannot encode before handing anything to its thread", async () => {
    const t = sink({ exchange: uniq("ex"), topicPrefix: "p".repeat(200) });
    const msgs = [...makeMessages(3), ...makeMessages(1, `org.${"long".repeat(20)}`)];
    await expect(t.send(msgs)).rejects.toMatchObject({ code: "BAD_TOPIC" });
    expect(workerOf(t)).toBeUndefined();
  });

  it("only publishes: receive() throws UNSUPPORTED; after close a send rejects CLOSED", async () => {
    const t = sink({ exchange: uniq("ex") });
    expect(() => t.receive()).toThrow(expect.objectContaining({ code: "UNSUPPORTED" }));
    await t.send(makeMessages(1, `org.unrouted.${uniq("t")}`));
    const w = workerOf(t)!;
    const exited = new Promise((resolve) => w.once("exit", resolve));
    await t.close();
    await exited;
    expect(t.health().state).toBe("closed");
    expect(t.health().counters["threadRestarts"]).toBeUndefined();
    await expect(t.send(makeMessages(1))).rejects.toMatchObject({ code: "CLOSED" });
  });
});

describe("AMQP sink configuration", () => {
  const sinksOf = (yaml: string) =>
    buildSinks(loadConfigText(yaml, { env: {} }).config, createLogger({ write: () => {} })).filter(
      (s) => s.kind === "amqp",
    );

  it("runs a configured AMQP sink on its own thread unless thread: false", async () => {
    const [threaded] = sinksOf("sinks:\n  - { name: rabbit, type: amqp }\n");
    const [inline] = sinksOf("sinks:\n  - { name: rabbit, type: amqp, thread: false }\n");
    expect(threaded).toBeInstanceOf(ThreadedAmqpSink);
    expect(inline).toBeInstanceOf(AmqpTransport);
    await threaded!.close();
    await inline!.close();
  });
});
