import { execFile } from "node:child_process";
import net from "node:net";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AmqpTransport, type AmqpTransportOptions } from "../src/transport/amqp.js";
import { coalesceWrites } from "../src/transport/amqp-cork.js";
import { isConfigProblem } from "../src/transport/amqp-session.js";
import type { Delivery } from "../src/transport/types.js";
import { decodeAmqp, HERALD_CONTENT_TYPE } from "../src/wire/fedora-messaging.js";
import { encodeEnvelope } from "../src/wire/herald.js";
import {
  Admin,
  AMQP_URL,
  armConnectionClose,
  burst,
  collectingLogger,
  makeMessages,
  uniq,
  waitFor,
} from "./amqp-helpers.js";

const run = promisify(execFile);

let admin: Admin;
const transports: AmqpTransport[] = [];

function transport(o: Partial<AmqpTransportOptions> & { exchange: string }): AmqpTransport {
  const t = new AmqpTransport({ name: uniq("t"), url: AMQP_URL, log: () => {}, ...o });
  transports.push(t);
  admin.track(o.exchange);
  return t;
}

beforeEach(async () => {
  admin = await Admin.open();
});

afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  await admin.close();
});

async function take(sub: AsyncIterable<Delivery>, n: number): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const it = sub[Symbol.asyncIterator]();
  while (out.length < n) {
    const r = await it.next();
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

describe("AMQP sink", () => {
  it("publishes N herald-format messages with confirms; all arrive with the right properties", async () => {
    const exchange = uniq("ex");
    const t = transport({ exchange });
    await t.open();
    const q = await admin.queue(uniq("q"), exchange);
    const msgs = makeMessages(500);
    await t.send(msgs);
    expect(t.health().sent).toBe(500);
    expect(t.health().state).toBe("up");
    const first = await admin.ch.get(q, { noAck: true });
    if (first === false) throw new Error("queue is empty");
    expect(first.properties.contentType).toBe(HERALD_CONTENT_TYPE);
    expect(first.properties.deliveryMode).toBe(2);
    expect(first.properties.messageId).toBe(msgs[0]!.id);
    expect(first.fields.routingKey).toBe(msgs[0]!.topic);
    expect(first.content.equals(encodeEnvelope(msgs[0]!))).toBe(true);
    const rest = await admin.drain(q, 499);
    expect(rest.size).toBe(499);
  });

  it("publishes fedora-messaging format that a pika consumer sees exactly as fedora-messaging's", async () => {
    const exchange = uniq("ex");
    const t = transport({ exchange, format: "fedora-messaging", topicPrefix: "org.example" });
    await t.open();
    const q = await admin.queue(uniq("q"), exchange, "org.example.#");
    const msgs = makeMessages(20, "prod.bodhi.update.comment").map((m, i) => ({
      ...m,
      headers: { ...m.headers, severity: i === 0 ? 40 : "debug", users: "alice" },
    }));
    await t.send(msgs);
    const { stdout } = await run("/usr/bin/python3", ["test/peers/fm_consume.py", AMQP_URL, q, "20", "20"]);
    const seen = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(seen).toHaveLength(20);
    const byId = new Map(msgs.map((m) => [m.id, m]));
    for (const s of seen) {
      const m = byId.get(s["message_id"] as string)!;
      expect(m).toBeDefined();
      expect(s).toMatchObject({
        routing_key: `org.example.${m.topic}`,
        exchange,
        content_type: "application/json",
        content_encoding: "utf-8",
        delivery_mode: 2,
        body: m.body,
      });
      const h = s["headers"] as Record<string, unknown>;
      expect(h["fedora_messaging_schema"]).toBe("base.message");
      expect(h["fedora_messaging_severity"]).toBe(m === msgs[0] ? 40 : 10);
      expect(h["sent-at"]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);
      expect(h["fedora_messaging_user_alice"]).toBe(true);
      const types = s["header_types"] as Record<string, string>;
      expect(types["fedora_messaging_severity"]).toBe("int");
      expect(types["sent-at"]).toBe("str");
      // Everything else is herald's, ignored by fedora-messaging consumers.
      const foreign = Object.keys(h).filter(
        (k) => !k.startsWith("fedora_messaging_") && k !== "sent-at" && !k.startsWith("herald_"),
      );
      expect(foreign).toEqual([]);
    }
  });

  it("counts unroutable (returned) messages, resolves send and does not retry them", async () => {
    const exchange = uniq("ex");
    const logger = collectingLogger();
    const t = transport({ exchange, log: logger.log });
    await t.open();
    await t.send(makeMessages(5, "nobody.listens"));
    const h = t.health();
    expect(h.counters["returned"]).toBe(5);
    expect(h.sent).toBe(0);
    expect(h.counters["pending"]).toBe(0);
    expect(h.lastError).toMatch(/unroutable/);
    expect(logger.lines.filter((l) => l.includes("unroutable"))).toHaveLength(5);
    // An exchange that returns everything does not log a line per message: counted, not each logged.
    await t.send(makeMessages(40, "nobody.listens"));
    expect(t.health().counters["returned"]).toBe(45);
    expect(logger.lines.filter((l) => l.includes("unroutable"))).toHaveLength(5);
    // Routable ones still go through on the same channel.
    const q = await admin.queue(uniq("q"), exchange, "some.#");
    await t.send(makeMessages(3, "some.topic"));
    expect(await admin.depth(q)).toBe(3);
    expect(t.health().counters["returned"]).toBe(45);
  });

  it("retries nacked messages with backoff and delivers them once there is room (lost = 0)", async () => {
    const exchange = uniq("ex");
    const t = transport({ exchange, retryMaxDelay: 400 });
    await t.open();
    const q = await admin.queue(uniq("q"), exchange, "#", {
      "x-max-length": 1,
      "x-overflow": "reject-publish",
    });
    admin.ch.publish(exchange, "fill.it", Buffer.from("{}"), { messageId: "filler" });
    await waitFor("the filler message", async () => (await admin.depth(q)) === 1);
    const [m] = makeMessages(1);
    let done = false;
    const sending = t.send([m!]).then(() => {
      done = true;
    });
    await waitFor("three nacks", () => (t.health().counters["nacked"] ?? 0) >= 3);
    expect(done).toBe(false);
    // Backoff, not a tight loop: a tight loop would have produced hundreds of nacks by now.
    expect(t.health().counters["nacked"]).toBeLessThan(8);
    expect(t.health().lastError).toMatch(/nacked/);
    await admin.ch.purgeQueue(q);
    await sending;
    const got = await admin.drain(q, 1);
    expect([...got.keys()]).toEqual([m!.id]);
  });

  it("survives a server-side connection close mid-burst of 2,000: every message arrives", async () => {
    const exchange = uniq("ex");
    const name = uniq("conn");
    const t = transport({ name, exchange, reconnectMaxDelay: 1000, inFlight: 64 });
    await t.open();
    const q = await admin.queue(uniq("q"), exchange);
    const msgs = makeMessages(2000, undefined, {}, 1024);
    // Armed before the burst: RabbitMQ itself closes our connection once 600 messages are queued.
    const closing = await armConnectionClose(name, q, 600);
    await closing.armed;
    // The last batches wait for the reconnect, so part of the burst always uses the recovered connection.
    await burst(t, msgs, {
      batch: 100,
      concurrency: 4,
      gate: async (n) => {
        if (n >= 1900) await waitFor("reconnect", () => (t.health().counters["reconnects"] ?? 0) >= 1);
      },
    });
    expect(await closing.done).toBe(1);
    await waitFor("reconnect", () => (t.health().counters["reconnects"] ?? 0) >= 1);
    const seen = await admin.drain(q, 2000);
    const dups = [...seen.values()].filter((c) => c > 1).length;
    const h = t.health();
    console.log(
      `connection close mid-burst: distinct=${seen.size} duplicates=${dups} republished=${h.counters["republished"]} reconnects=${h.counters["reconnects"]}`,
    );
    expect(seen.size).toBe(2000);
    expect(h.counters["republished"]).toBeGreaterThan(0); // the close really hit unconfirmed messages
    for (const m of msgs) expect(seen.has(m.id)).toBe(true);
  });
});

describe("AMQP socket writes", () => {
  it("sends a burst's frames in far fewer socket writes than messages, and every message arrives", async () => {
    const ex = uniq("ex");
    const t = transport({ exchange: ex });
    await t.open();
    const q = await admin.queue(uniq("q"), ex);
    const proto = net.Socket.prototype as unknown as Record<
      "_write" | "_writev",
      (...a: unknown[]) => unknown
    >;
    const original = { write: proto._write, writev: proto._writev };
    let writes = 0;
    proto._write = function (this: unknown, ...a: unknown[]) {
      writes++;
      return original.write.apply(this, a);
    };
    proto._writev = function (this: unknown, ...a: unknown[]) {
      writes++;
      return original.writev.apply(this, a);
    };
    try {
      await t.send(makeMessages(2000));
    } finally {
      proto._write = original.write;
      proto._writev = original.writev;
    }
    // Uncorked, amqplib writes each publish's frames with a syscall of their own: 2,000 or more.
    expect(writes).toBeLessThan(1000);
    expect((await admin.drain(q, 2000)).size).toBe(2000);
  });

  it("leaves a connection without amqplib's internals alone", () => {
    expect(coalesceWrites({} as never)).toBe(false);
    expect(coalesceWrites({ connection: { muxer: {}, stream: {} } } as never)).toBe(false);
  });
});

describe("AMQP open", () => {
  it("rejects refused credentials and a missing exchange with a TRANSPORT error naming the fix", async () => {
    const bad = transport({ exchange: uniq("ex"), url: "amqp://guest:wrong@127.0.0.1:5672/%2F" });
    await expect(bad.open()).rejects.toThrow(/refused the connection.*check the user, password/);
    await expect(bad.send(makeMessages(1))).rejects.toMatchObject({ code: "TRANSPORT", retryable: false });
    const missing = transport({ exchange: uniq("missing"), declareExchange: false });
    await expect(missing.open()).rejects.toThrow(/declareExchange is false/);
  });

  it("resolves open() while the broker is unreachable and reports 'down'", async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (srv.address() as net.AddressInfo).port;
        srv.close(() => resolve(p));
      });
    });
    const t = transport({ exchange: uniq("ex"), url: `amqp://guest:guest@127.0.0.1:${port}/%2F` });
    await t.open();
    expect(t.health().state).toBe("down");
    expect(t.health().lastError).toMatch(/ECONNREFUSED/);
  });

  it("tells a refused login from a refused socket whose address holds the same digits", () => {
    const socketError = (port: number): Error =>
      Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:${port}`), { code: "ECONNREFUSED" });
    // CI once drew port 40301: "403" in it failed open() instead of retrying in the background.
    for (const port of [40301, 15300, 5672]) expect(isConfigProblem(socketError(port))).toBe(false);
    expect(
      isConfigProblem(new Error("Handshake terminated by server: 403 (ACCESS-REFUSED) with message")),
    ).toBe(true);
    expect(
      isConfigProblem(new Error('Handshake terminated by server: 530 (NOT-ALLOWED) with message "x"')),
    ).toBe(true);
    expect(isConfigProblem(new Error("Socket closed abruptly during opening handshake"))).toBe(false);
  });
});

describe("AMQP source", () => {
  it("acks only on Delivery.ack(); un-acked messages are redelivered after the receiver closes", async () => {
    const exchange = uniq("ex");
    const queue = uniq("q");
    const t = transport({ exchange, queue, format: "auto" });
    await t.open();
    const sub = t.receive({ patterns: ["org.example.#"], manualAck: true });
    await sub.whenReady();
    const msgs = makeMessages(5);
    await t.send(msgs);
    const first = await take(sub, 5);
    expect(first.map((d) => d.message)).toEqual(msgs);
    expect(first[0]!.via).toBe(`amqp:${queue}`);
    expect(first[0]!.format).toBe("herald");
    await first[0]!.ack();
    await sub.close();
    const sub2 = t.receive({ patterns: ["org.example.#"], manualAck: true });
    const again = await take(sub2, 4);
    expect(again.map((d) => d.message.id).sort()).toEqual(
      msgs
        .slice(1)
        .map((m) => m.id)
        .sort(),
    );
    for (const d of again) await d.ack();
    await sub2.close();
    await waitFor("empty queue", async () => (await admin.depth(queue)) === 0);
    await admin.ch.deleteQueue(queue);
  });

  it("filters by the routing key it bound, not by the envelope's topic (a sink added a prefix the source does not strip)", async () => {
    const exchange = uniq("ex");
    const sink = transport({ exchange, topicPrefix: "org.fedoraproject.prod" });
    await sink.open();
    const source = transport({ exchange, format: "auto" });
    await source.open();
    const sub = source.receive({ patterns: ["org.fedoraproject.prod.#"] });
    await sub.whenReady();
    const msgs = makeMessages(3, "build.finished");
    await sink.send(msgs);
    // Routed by org.fedoraproject.prod.build.finished; the herald envelope's topic is build.finished.
    const got = await take(sub, 3);
    expect(got.map((d) => d.message.id)).toEqual(msgs.map((m) => m.id));
    expect(got[0]!.message.topic).toBe("build.finished");
    expect(source.health().counters["filtered"] ?? 0).toBe(0);
    await sub.close();
  });

  it("auto-acks after yielding, normalizes fedora-messaging input, rejects malformed bodies", async () => {
    const exchange = uniq("ex");
    const t = transport({ exchange, format: "auto" });
    await t.open();
    const sub = t.receive({ patterns: ["a.#"] });
    await sub.whenReady();
    expect(sub.queueName).toMatch(/^amq\.gen-/);
    const it = sub[Symbol.asyncIterator]();
    const fm = {
      contentType: "application/json",
      messageId: "fm-1",
      headers: {
        fedora_messaging_schema: "base.message",
        fedora_messaging_severity: 20,
        "sent-at": "2019-07-30T19:12:22+00:00",
      },
    };
    admin.ch.publish(exchange, "a.bad", Buffer.from("{nope"), { ...fm, messageId: "bad-1" });
    admin.ch.publish(exchange, "a.good", Buffer.from('{"k":1}'), fm);
    const r = await it.next();
    expect(r.done).toBe(false);
    const d = r.value as Delivery;
    expect(d.format).toBe("fedora-messaging");
    expect(d.message).toMatchObject({
      id: "fm-1",
      topic: "a.good",
      body: { k: 1 },
      sentAt: "2019-07-30T19:12:22.000Z",
    });
    expect(decodeAmqp({ routingKey: "a.good", content: d.raw!, properties: fm }).message).toEqual(d.message);
    await waitFor("malformed counted", () => (t.health().counters["malformed"] ?? 0) >= 1);
    expect(t.health().lastError).toMatch(/not valid JSON/);
    await sub.close();
  });
});
