/**
 * A connection that fails as soon as it is up (fuzz review: a frame amqplib could not parse, redelivered to
 * every new connection) reconnected after the initial delay every time, since coming up reset the backoff:
 * 20 log lines a second, forever. Now only a connection that stayed up resets it. Real RabbitMQ; the
 * failure is a socket error right after each connect.
 */
import type { ChannelModel } from "amqplib";
import { afterEach, describe, expect, it } from "vitest";
import { resolveAmqpOptions } from "../src/transport/amqp-options.js";
import { AmqpSession } from "../src/transport/amqp-session.js";
import { initialHealth } from "../src/transport/types.js";
import { AMQP_URL, uniq, waitFor } from "./amqp-helpers.js";

const sessions: AmqpSession[] = [];
afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
});

function cut(model: ChannelModel): void {
  const stream = (model as unknown as { connection: { stream: { destroy(e: Error): void } } }).connection
    .stream;
  stream.destroy(new Error("test: connection cut"));
}

/** A session whose connection is cut `cutAfterMs` after each connect; resolves the delays before each reconnect. */
async function run(cutAfterMs: () => number, cycles: number): Promise<number[]> {
  const o = resolveAmqpOptions({
    name: uniq("fx4-backoff"),
    url: AMQP_URL,
    reconnectInitialDelay: 10,
    reconnectMaxDelay: 400,
    log: () => {},
  });
  const session = new AmqpSession(o, initialHealth());
  sessions.push(session);
  const delays: number[] = [];
  let lostAt = 0;
  let ups = 0;
  session.listen({
    up: (model) => {
      if (lostAt > 0) delays.push(Date.now() - lostAt);
      // The last one stays up: close() then closes it (a cut during close would be another test).
      if (++ups <= cycles) setTimeout(() => cut(model), cutAfterMs());
    },
    down: () => {
      lostAt = Date.now();
    },
  });
  await session.start();
  await waitFor(`${cycles} reconnects`, () => ups > cycles, 30_000);
  return delays;
}

describe("AMQP session backoff", () => {
  it("grows for a connection that keeps failing as soon as it is up", async () => {
    const delays = await run(() => 0, 7);
    // 10, 20, 40, 80, 160, 320, 400 ms (+ up to 20 % jitter); it was 10 ms every time.
    expect(delays.slice(-2).every((d) => d >= 300)).toBe(true);
    expect(delays[0]).toBeLessThan(100);
  });

  it("starts over after a connection that stayed up (1 s, or reconnectMaxDelay if longer)", async () => {
    let n = 0;
    // Five quick failures (10 ... 160 ms), then one after 1.1 s up: back to 10 ms.
    const delays = await run(() => [0, 0, 0, 0, 0, 1_100][n++] ?? 0, 6);
    expect(delays[4]).toBeGreaterThanOrEqual(160);
    expect(delays[5]).toBeLessThan(80);
  });
});

describe("AMQP session reconnect log", () => {
  it("logs a reconnect that keeps failing the same way once, not once per attempt", async () => {
    const { freePorts } = await import("./helpers/serve.js");
    const [port] = await freePorts(1);
    const lines: string[] = [];
    const o = resolveAmqpOptions({
      name: uniq("reconnect-log"),
      url: `amqp://guest:guest@127.0.0.1:${port}`,
      reconnectInitialDelay: 5,
      reconnectMaxDelay: 20,
      log: (level, message) => lines.push(`${level} ${message}`),
    });
    const session = new AmqpSession(o, initialHealth());
    sessions.push(session);
    await session.start().catch(() => {});
    // Nothing listens on the port: dozens of attempts in a second, each refused the same way.
    await new Promise((r) => setTimeout(r, 1000));
    const failed = lines.filter((l) => l.includes("reconnect attempt"));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatch(/^warn reconnect attempt \d+ failed: .*ECONNREFUSED/);
  });
});
