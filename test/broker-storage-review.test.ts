/**
 * Broker review fixes: after a storage fail-stop a submission is answered with the outbox's STORAGE_ERROR
 * (not SHUTTING_DOWN, "retry with the same ids"), and stop() forgets its dispatchers, so a later start()
 * has one per sink.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Broker, type BrokerOptions } from "../src/broker/broker.js";
import type { Transport, TransportHealth } from "../src/transport/types.js";
import { createMessage, type Message } from "../src/wire/message.js";

class NullSink implements Transport {
  readonly name = "amqp-hub";
  readonly kind = "amqp";
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async send(_batch: readonly Message[]): Promise<void> {}
  receive(): never {
    throw new Error("send only");
  }
  health(): TransportHealth {
    return { state: "up", sent: 0, received: 0, counters: {} } as unknown as TransportHealth;
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function broker(extra: Partial<BrokerOptions> = {}, failpoint = ""): Broker {
  const dir = mkdtempSync(join(tmpdir(), "herald-broker-review-"));
  const b = new Broker({
    name: "t",
    submitEndpoints: [`ipc://${join(dir, "run", "submit.sock")}`],
    outbox: { path: join(dir, "outbox.db"), failpoint },
    sinks: [new NullSink()],
    maxBodyBytes: 1 << 20,
    maxBatch: 100,
    ...extra,
  });
  cleanups.push(
    () => rmSync(dir, { recursive: true, force: true }),
    () => b.stop(),
  );
  return b;
}

const peer = { routingId: Buffer.alloc(0), endpoint: "test" };
const message = (): Message => createMessage({ topic: "org.test.review", body: {} });

describe("broker and its storage", () => {
  it("after a storage fail-stop, answers STORAGE_ERROR from the outbox, not SHUTTING_DOWN", async () => {
    const fatal: string[] = [];
    const b = broker({ onFatal: (err) => fatal.push(err.code) }, "outbox.before_commit=error@1");
    await b.start();
    const [first] = await b.accept([message()], peer);
    expect(first).toMatchObject({ ok: false, error: { code: "STORAGE_ERROR" } });
    const [next] = await b.accept([message()], peer);
    expect(next).toMatchObject({ ok: false, error: { code: "STORAGE_ERROR" } });
    expect(next?.ok === false && next.error.message).toContain("failed during an append commit");
    expect(fatal).toEqual(["STORAGE_ERROR"]);
  });

  it("a start after stop has one dispatcher per sink", async () => {
    const b = broker();
    await b.start();
    await b.stop();
    await b.start();
    expect(b.status().sinks.map((s) => s.name)).toEqual(["amqp-hub"]);
  });
});
