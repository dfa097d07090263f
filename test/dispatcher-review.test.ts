/**
 * Dispatcher review fixes: an undecodable outbox row is passed over once the rows before it went out (it
 * once stalled its sink for good), and a long backlog over sends that resolve at once still lets the event
 * loop turn.
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Dispatcher } from "../src/broker/dispatcher.js";
import { Outbox } from "../src/storage/index.js";
import type { Transport, TransportHealth } from "../src/transport/types.js";
import type { Logger } from "../src/util/log.js";
import type { Message } from "../src/wire/message.js";
import { msgs, tempDir } from "./fixtures/outbox-helpers.js";
import { waitFor } from "./helpers/broker.js";

/** A transport whose sends resolve at once, recording the body `n` of every message. */
class RecordingTransport implements Transport {
  readonly name = "rec";
  readonly kind = "amqp";
  readonly got: number[] = [];
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async send(batch: readonly Message[]): Promise<void> {
    for (const m of batch) this.got.push(Number(m.body["n"]));
  }
  receive(): never {
    throw new Error("send only");
  }
  health(): TransportHealth {
    return { state: "up", sent: this.got.length, received: 0, counters: {} } as unknown as TransportHealth;
  }
}

function recordingLogger(): Logger & { errors: Array<[string, Record<string, unknown> | undefined]> } {
  const errors: Array<[string, Record<string, unknown> | undefined]> = [];
  const log = {
    errors,
    debug() {},
    info() {},
    warn() {},
    error(msg: string, fields?: Record<string, unknown>) {
      errors.push([msg, fields]);
    },
    child: () => log,
  };
  return log;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function outboxPath(): string {
  const { dir, cleanup } = tempDir();
  cleanups.push(cleanup);
  return join(dir, "outbox.db");
}

function run(box: Outbox, opts: ConstructorParameters<typeof Dispatcher>[3] = {}) {
  const t = new RecordingTransport();
  const log = recordingLogger();
  const d = new Dispatcher(t, box, log, opts);
  cleanups.push(() => d.stop());
  d.start();
  return { t, d, log };
}

describe("Dispatcher over an undecodable outbox row", () => {
  it("delivers the rows before it, passes over it (error log, counted), and goes on", async () => {
    const path = outboxPath();
    const first = Outbox.open({ path, failpoint: "" });
    first.registerSink("rec");
    first.appendSync(msgs(5, 1)); // n = 1..5, seq = 1..5
    first.close({ clean: false });
    const db = new Database(path);
    db.prepare("UPDATE messages SET envelope = X'00ff' WHERE seq = 3").run();
    db.close();
    const box = Outbox.open({ path, failpoint: "" });
    cleanups.push(() => box.close());
    const { t, d, log } = run(box);
    expect(await waitFor(() => t.got.length >= 4, 5000)).toBe(true);
    expect(t.got).toEqual([1, 2, 4, 5]);
    const status = d.status(box.headSeq);
    expect(status).toMatchObject({ cursor: 5, skipped: 1, delivered: 4 });
    expect(status.lastError).toContain("seq 3");
    expect(log.errors).toHaveLength(1);
    expect(log.errors[0]?.[1]).toMatchObject({ seq: 3, code: "STORAGE_ERROR" });
  });
});

describe("Dispatcher over a long backlog", () => {
  it("lets the event loop turn while sends resolve at once", async () => {
    const box = Outbox.open({ path: outboxPath(), failpoint: "", synchronous: "normal" });
    cleanups.push(() => box.close());
    box.registerSink("rec");
    const total = 60_000;
    for (let n = 0; n < total; n += 1000) box.appendSync(msgs(1000, n));
    const { t } = run(box, { batchSize: 1 });
    // Before the fix the first turn came only once the whole backlog was sent.
    const atFirstTurn = await new Promise<number>((resolve) => setImmediate(() => resolve(t.got.length)));
    expect(atFirstTurn).toBeLessThan(total);
    expect(await waitFor(() => t.got.length === total, 60_000)).toBe(true);
  }, 90_000);
});
