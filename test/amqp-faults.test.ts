/**
 * Tests that disrupt the whole RabbitMQ node (memory alarm, application restart). Kept apart from
 * test/amqp.test.ts so they can be run serially; every test restores the broker in a `finally` block:
 * the alarm is cleared and the application is running and started before the test ends.
 */
import { afterEach, describe, expect, it } from "vitest";
import { MessageRejectedError } from "../src/errors.js";
import { AmqpTransport, type AmqpTransportOptions } from "../src/transport/amqp.js";
import { Admin, AMQP_URL, burst, makeMessages, rabbitmqctl, uniq, waitFor } from "./amqp-helpers.js";

const transports: AmqpTransport[] = [];
const admins: Admin[] = [];
const exchanges: string[] = [];

function transport(o: Partial<AmqpTransportOptions> & { exchange: string }): AmqpTransport {
  const t = new AmqpTransport({ name: uniq("t"), url: AMQP_URL, log: () => {}, ...o });
  transports.push(t);
  exchanges.push(o.exchange);
  return t;
}

async function admin(): Promise<Admin> {
  const a = await Admin.open();
  admins.push(a);
  return a;
}

/** Whatever happened, leave RabbitMQ running and without alarms. */
async function restoreBroker(): Promise<void> {
  await rabbitmqctl("start_app").catch(() => {});
  await rabbitmqctl("await_startup");
  await rabbitmqctl("set_vm_memory_high_watermark", "0.4");
}

afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  const cleaner = await admin();
  for (const e of exchanges.splice(0)) cleaner.track(e);
  for (const a of admins.splice(0)) await a.close();
});

describe("AMQP under broker faults", () => {
  it("shows 'blocked' in health during a memory alarm and delivers once it clears (lost = 0)", async () => {
    const exchange = uniq("ex");
    const t = transport({ exchange });
    await t.open();
    const a = await admin();
    const q = await a.queue(uniq("q"), exchange);
    const [m] = makeMessages(1);
    let sending: Promise<void> | undefined;
    try {
      await rabbitmqctl("set_vm_memory_high_watermark", "0.0000001");
      // RabbitMQ blocks a connection when it next publishes; the notification says why.
      sending = t.send([m!]);
      await waitFor("blocked state", () => t.health().state === "blocked", 30_000);
      expect(t.health().lastError).toMatch(/blocked/i);
      expect(t.health().counters["blocked"]).toBeGreaterThanOrEqual(1);
    } finally {
      await restoreBroker();
    }
    await sending;
    await waitFor("unblocked state", () => t.health().state === "up", 30_000);
    const got = await a.drain(q, 1);
    expect([...got.keys()]).toEqual([m!.id]);
  });

  it("loses nothing when RabbitMQ restarts mid-burst of 10,000 (duplicates counted)", async () => {
    const exchange = uniq("ex");
    const queue = uniq("q");
    const t = transport({ exchange, reconnectMaxDelay: 1000 });
    await t.open();
    const a = await admin();
    await a.queue(queue, exchange);
    const msgs = makeMessages(10_000);
    let restart: Promise<void> | undefined;
    try {
      await burst(t, msgs, {
        batch: 100,
        concurrency: 4,
        onProgress: (n) => {
          if (n >= 1000 && !restart)
            restart = (async () => {
              await rabbitmqctl("stop_app");
              await rabbitmqctl("start_app");
            })();
        },
        // The tail of the burst waits for the reconnect, so it always spans the restart.
        gate: async (n) => {
          if (n >= 8000)
            await waitFor("reconnect", () => (t.health().counters["reconnects"] ?? 0) >= 1, 90_000);
        },
      });
      await restart;
    } finally {
      await restoreBroker();
    }
    const after = await admin(); // the first admin connection died with the restart
    await after.exchange(exchange);
    await after.queue(queue, exchange);
    const seen = await after.drain(queue, 10_000, 3000);
    const dups = [...seen.values()].filter((c) => c > 1).length;
    const h = t.health();
    console.log(
      `RabbitMQ restart mid-burst: distinct=${seen.size} lost=${msgs.filter((m) => !seen.has(m.id)).length} duplicates=${dups} republished=${h.counters["republished"]} reconnects=${h.counters["reconnects"]}`,
    );
    expect(h.counters["reconnects"]).toBeGreaterThanOrEqual(1);
    expect(msgs.filter((m) => !seen.has(m.id))).toEqual([]);
    expect(seen.size).toBe(10_000);
  }, 180_000);

  it("refuses for good a message RabbitMQ will never take (over max_message_size), delivers the rest", async () => {
    const MAX = 4096;
    await rabbitmqctl("eval", `application:set_env(rabbit, max_message_size, ${MAX}).`);
    try {
      const a = await admin();
      const exchange = uniq("ex");
      const t = transport({ exchange });
      await t.open();
      const q = await a.queue(uniq("q"), exchange);
      const [m1, big, m3, m4] = makeMessages(4);
      big!.body = { blob: "x".repeat(2 * MAX) };
      // The server closes the channel over the big one, with the others in flight beside it.
      const err = await t.send([m1!, big!, m3!, m4!]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MessageRejectedError);
      expect(err).toMatchObject({ code: "TOO_LARGE" });
      expect(String((err as Error).message)).toContain(big!.id);
      // Resent without it (as the dispatcher does once it passed it over), the rest go through.
      await t.send([m1!, m3!, m4!]);
      const seen = await a.drain(q, 3);
      expect([...seen.keys()].sort()).toEqual([m1!.id, m3!.id, m4!.id].sort());
    } finally {
      await rabbitmqctl("eval", "application:set_env(rabbit, max_message_size, 134217728).");
    }
  }, 60_000);
});
