import net from "node:net";
import type { ChannelModel, ConfirmChannel } from "amqplib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { TransportError } from "../src/errors.js";
import { AmqpTransport, type AmqpTransportOptions, resolveAmqpOptions } from "../src/transport/amqp.js";
import { AmqpPublisher } from "../src/transport/amqp-publisher.js";
import { AmqpSession } from "../src/transport/amqp-session.js";
import { initialHealth } from "../src/transport/types.js";
import { Admin, AMQP_URL, collectingLogger, makeMessages, uniq, waitFor } from "./amqp-helpers.js";

let admin: Admin;
const transports: AmqpTransport[] = [];
const cleanups: (() => Promise<void> | void)[] = [];

function transport(o: Partial<AmqpTransportOptions> & { exchange: string }): AmqpTransport {
  const t = new AmqpTransport({ name: uniq("t"), url: AMQP_URL, log: () => {}, ...o });
  transports.push(t);
  return t;
}

/** What a promise did within `ms` (bounded: a hang is a result, not a stuck test). */
function outcome(p: Promise<unknown>, ms: number): Promise<{ ok: boolean; err?: unknown } | "pending"> {
  return Promise.race([
    p.then(
      () => ({ ok: true }),
      (err: unknown) => ({ ok: false, err }),
    ),
    new Promise<"pending">((r) => setTimeout(() => r("pending"), ms)),
  ]);
}

beforeEach(async () => {
  admin = await Admin.open();
});

afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  for (const c of cleanups.splice(0)) await c();
  await admin.close();
});

describe("AMQP sink: exchange refusals (review)", () => {
  it("sends once the exchange exists, after a first open() failed the exchange check", async () => {
    const exchange = uniq("late");
    const t = transport({ exchange, declareExchange: false });
    const first = await outcome(t.open(), 20_000);
    expect(first).not.toBe("pending");
    expect((first as { err?: unknown }).err).toBeInstanceOf(TransportError);
    await admin.exchange(exchange);
    const q = await admin.queue(uniq("q"), exchange);
    const [m] = makeMessages(1);
    // The background channel retry picks the new exchange up; every send until then fails fast.
    await waitFor("a send to the new exchange to succeed", async () => {
      const r = await outcome(t.send([m!]), 5000);
      return r !== "pending" && r.ok;
    });
    expect(t.health().state).toBe("up");
    expect((await admin.drain(q, 1)).has(m!.id)).toBe(true);
  });

  it("rejects a waiting send with a non-retryable TRANSPORT error when open() first ran while RabbitMQ was down", async () => {
    const exchange = uniq("direct");
    await admin.ch.assertExchange(exchange, "direct", { durable: true });
    admin.track(exchange);
    const port = await freePort();
    const t = transport({
      exchange,
      url: `amqp://guest:guest@127.0.0.1:${port}/%2F`,
      reconnectMaxDelay: 200,
    });
    await t.open(); // nothing listens yet: resolves "down"
    expect(t.health().state).toBe("down");
    const sent = t.send(makeMessages(1));
    const proxy = await tcpProxy(port, 5672);
    cleanups.push(() => new Promise<void>((r) => proxy.close(() => r())));
    const r = await outcome(sent, 20_000);
    expect(r).not.toBe("pending");
    const err = (r as { err?: unknown }).err as TransportError;
    expect(err).toBeInstanceOf(TransportError);
    expect(err.code).toBe("TRANSPORT");
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/cannot use exchange .*fix exchangeType/);
  });

  it("fails sends to an internal exchange (403 on publish) as non-retryable TRANSPORT, and backs off reopening", async () => {
    const exchange = uniq("internal");
    await admin.ch.assertExchange(exchange, "topic", { durable: true, internal: true });
    admin.track(exchange);
    const { log, lines } = collectingLogger();
    const t = transport({ exchange, declareExchange: false, log });
    await t.open();
    for (let round = 1; round <= 2; round++) {
      const r = await outcome(t.send(makeMessages(3)), 20_000);
      expect(r, `round ${round}`).not.toBe("pending");
      const err = (r as { err?: unknown }).err as TransportError;
      expect(err).toBeInstanceOf(TransportError);
      expect(err.code).toBe("TRANSPORT");
      expect(err.retryable).toBe(false);
      expect(err.message).toMatch(/internal exchange.*configure another exchange/);
    }
    expect(t.health().counters["pending"]).toBe(0);
    expect(lines.filter((l) => l.startsWith("error: ")).length).toBeGreaterThanOrEqual(2);
    // Setting the channel up again succeeded in between, yet the backoff grew: only a confirmed publish
    // resets it (otherwise the channel is reopened every 100 ms, forever).
    const failures = (t as unknown as { publisher: { channelFailures: number } }).publisher.channelFailures;
    expect(failures).toBeGreaterThanOrEqual(2);
  });
});

describe("AMQP sink: close during channel setup (review)", () => {
  it("closes the channel it was setting up when close() ran meanwhile", async () => {
    const exchange = uniq("ex");
    admin.track(exchange);
    const o = resolveAmqpOptions({ name: uniq("p"), url: AMQP_URL, exchange, log: () => {} });
    const health = initialHealth();
    const session = new AmqpSession(o, health);
    cleanups.push(() => session.close());
    await session.start();
    let publisher: AmqpPublisher | undefined;
    let setUp: ConfirmChannel | undefined;
    let channelClosed = false;
    const model = session.model as ChannelModel;
    const create = model.createConfirmChannel.bind(model);
    model.createConfirmChannel = async () => {
      const ch = await create();
      setUp = ch;
      ch.once("close", () => {
        channelClosed = true;
      });
      const assert = ch.assertExchange.bind(ch);
      // close() lands between the exchange declaration and the end of the setup.
      ch.assertExchange = async (...args: Parameters<ConfirmChannel["assertExchange"]>) => {
        const r = await assert(...args);
        void publisher?.close();
        return r;
      };
      return ch;
    };
    publisher = new AmqpPublisher(o, session, health);
    await waitFor("the setup to reach the exchange", () => setUp !== undefined);
    await waitFor("the channel set up during close() to be closed", () => channelClosed, 10_000);
  });
});

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  return port;
}

/** A plain TCP relay to RabbitMQ on `port`: the broker "comes up" when it starts listening. */
async function tcpProxy(port: number, target: number): Promise<net.Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const u = net.connect(target, "127.0.0.1");
    for (const s of [c, u]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    }
    c.pipe(u).pipe(c);
    c.on("error", () => u.destroy());
    u.on("error", () => c.destroy());
  });
  const close = server.close.bind(server);
  server.close = (cb?: (err?: Error) => void) => {
    for (const s of sockets) s.destroy();
    return close(cb);
  };
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return server;
}
