/**
 * The AMQP consumer's rejections (fuzz review): a flood of undecodable messages logs at most 20 lines a
 * minute, the rest counted into the next line (the `malformed` counter still counts each one); a message
 * whose header table herald's decoder left incomplete is rejected like them. The consumer's message
 * handler is driven directly with a stand-in channel: what RabbitMQ does around it is in
 * test/amqp-nested-headers.test.ts.
 */
import type { Channel, ConsumeMessage } from "amqplib";
import { afterEach, describe, expect, it, vi } from "vitest";
import { AmqpSubscription } from "../src/transport/amqp-consumer.js";
import { decodeFieldTable } from "../src/transport/amqp-fields.js";
import { resolveAmqpOptions } from "../src/transport/amqp-options.js";
import { rateLimitedAmqpLog } from "../src/transport/amqp-refusals.js";
import type { AmqpSession } from "../src/transport/amqp-session.js";
import { initialHealth } from "../src/transport/types.js";

afterEach(() => {
  vi.useRealTimers();
});

function consumer() {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const o = resolveAmqpOptions({
    name: "refusals",
    url: "amqp://127.0.0.1:1/",
    queue: "q",
    log: (level, message, fields) => lines.push({ level, message, ...(fields ? { fields } : {}) }),
  });
  const session = { listen: () => () => {}, model: undefined } as unknown as AmqpSession;
  const health = initialHealth();
  const sub = new AmqpSubscription(o, session, health, { patterns: ["#"] }, () => {});
  const nacked: unknown[] = [];
  const ch = { nack: (m: unknown) => nacked.push(m), ack: () => {} } as unknown as Channel;
  const deliver = (content: string, headers: Record<string, unknown> = {}): void => {
    const m = {
      fields: { routingKey: "t.x", deliveryTag: 1, redelivered: false, exchange: "x", consumerTag: "c" },
      content: Buffer.from(content),
      properties: { contentType: "application/json", messageId: "m1", headers },
    } as unknown as ConsumeMessage;
    (sub as unknown as { onMessage(c: Channel, gen: number, m: ConsumeMessage): void }).onMessage(ch, 0, m);
  };
  return { lines, health, nacked, deliver };
}

describe("AMQP consumer: undecodable messages", () => {
  it("are each rejected and counted, but logged 20 a minute with the rest counted into the next line", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const c = consumer();
    for (let i = 0; i < 2000; i++) c.deliver(`not json ${i}`);
    expect(c.health.counters["malformed"]).toBe(2000);
    expect(c.nacked).toHaveLength(2000);
    const warned = c.lines.filter((l) => l.message.startsWith("rejecting undecodable message from"));
    expect(warned).toHaveLength(20);
    expect(warned[0]?.message).toContain("fedora-messaging body is not valid JSON");
    vi.setSystemTime(Date.now() + 61_000);
    c.deliver("still not json");
    expect(c.lines).toHaveLength(21);
    expect(c.lines[20]?.fields).toEqual({ suppressed: 1980 });
  });

  it("include a message whose header table was nested too deep to decode", () => {
    const c = consumer();
    const deep = Buffer.alloc(5 + 7 * 40 + 1);
    deep.write("\x04deep", 0, "latin1");
    for (let i = 0; i < 40; i++) {
      deep.write("F", 5 + 7 * i, "latin1");
      deep.writeUInt32BE((40 - i) * 7 + 1 - 5, 6 + 7 * i);
      deep.write("\x01a", 10 + 7 * i, "latin1");
    }
    deep.write("V", 5 + 7 * 40, "latin1");
    c.deliver('{"a": 1}', decodeFieldTable(deep));
    expect(c.health.counters["malformed"]).toBe(1);
    expect(c.nacked).toHaveLength(1);
    expect(c.health.lastError).toBe(
      "AMQP header table nests tables or arrays deeper than 32 levels, which herald does not decode: publish flatter headers",
    );
    // The same message with its headers whole is taken.
    c.deliver('{"a": 1}', { "sent-at": "2024-01-01T00:00:00+00:00" });
    expect(c.nacked).toHaveLength(1);
  });
});

describe("rateLimitedAmqpLog", () => {
  it("passes `burst` lines a window per key, at their own level, then counts the rest into the next", () => {
    let now = 0;
    const out: string[] = [];
    const log = rateLimitedAmqpLog(
      (level, message, fields) => out.push(`${level} ${message} ${JSON.stringify(fields)}`),
      {
        burst: 2,
        intervalMs: 1000,
        now: () => now,
        key: (m) => m.split(":")[0] ?? m,
      },
    );
    for (const m of ["a: 1", "a: 2", "a: 3", "b: 1", "a: 4"]) log("error", m);
    now = 1000;
    log("error", "a: 5");
    expect(out).toEqual([
      "error a: 1 undefined",
      "error a: 2 undefined",
      "error b: 1 undefined",
      'error a: 5 {"suppressed":2}',
    ]);
  });
});
