import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Dispatcher } from "../src/broker/dispatcher.js";
import { rejected } from "../src/errors.js";
import { Outbox } from "../src/storage/index.js";
import type { Transport, TransportHealth } from "../src/transport/types.js";
import { createLogger } from "../src/util/log.js";
import type { Message } from "../src/wire/message.js";
import { msgs, tempDir } from "./fixtures/outbox-helpers.js";
import { waitFor } from "./helpers/broker.js";

/** A transport whose sends the test settles by hand, in any order. */
class ManualTransport implements Transport {
  readonly name = "manual";
  readonly kind = "amqp";
  readonly calls: Array<{ ns: number[]; resolve: () => void; reject: (e: Error) => void }> = [];
  async open(): Promise<void> {}
  private closed = false;
  send(batch: readonly Message[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error("CLOSED"));
    return new Promise((resolve, reject) =>
      this.calls.push({ ns: batch.map((m) => Number(m.body["n"])), resolve, reject }),
    );
  }
  receive(): never {
    throw new Error("send only");
  }
  health(): TransportHealth {
    return { state: "up", sent: 0, received: 0, errors: 0, counters: {} } as unknown as TransportHealth;
  }
  /** Like the real transports: pending sends reject with CLOSED. */
  async close(): Promise<void> {
    this.closed = true;
    for (const c of this.calls) c.reject(new Error("CLOSED"));
  }
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(pagesInFlight: number) {
  const { dir, cleanup } = tempDir();
  const box = Outbox.open({ path: join(dir, "outbox.db"), failpoint: "" });
  const t = new ManualTransport();
  const d = new Dispatcher(t, box, createLogger({ level: "error" }), { batchSize: 3, pagesInFlight });
  cleanups.push(
    cleanup,
    () => box.close(),
    () => d.stop(),
    () => t.close(), // first: like the broker, close the sink so a send in flight ends
  );
  return { box, t, d };
}

describe("Dispatcher with pages in flight", () => {
  it("hands the next page over before the first is confirmed, and advances the cursor in order", async () => {
    const { box, t, d } = setup(2);
    d.start();
    await box.append(msgs(9));
    expect(await waitFor(() => t.calls.length === 2, 5000)).toBe(true);
    expect(t.calls.map((c) => c.ns)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    t.calls[1]!.resolve(); // the second finishes first: the cursor must wait for the first
    await new Promise((r) => setTimeout(r, 20));
    expect(d.status(9).cursor).toBe(0);
    t.calls[0]!.resolve();
    expect(await waitFor(() => d.status(9).cursor === 6 && t.calls.length === 3, 5000)).toBe(true);
    t.calls[2]!.resolve();
    expect(await waitFor(() => d.status(9).cursor === 9, 5000)).toBe(true);
    expect(d.status(9).delivered).toBe(9);
  });

  it("after a failed page sends it and every later page again, then delivers everything", async () => {
    const { box, t, d } = setup(2);
    d.start();
    await box.append(msgs(6));
    expect(await waitFor(() => t.calls.length === 2, 5000)).toBe(true);
    t.calls[1]!.resolve();
    t.calls[0]!.reject(new Error("connection lost"));
    // the retry (after backoff) starts again at the failed page: both pages are resent
    expect(await waitFor(() => t.calls.length === 4, 10_000)).toBe(true);
    expect(t.calls.slice(2).map((c) => c.ns)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
    for (const c of t.calls.slice(2)) c.resolve();
    expect(await waitFor(() => d.status(6).cursor === 6, 5000)).toBe(true);
    const s = d.status(6);
    expect(s.retries).toBe(1);
    expect(s.lastError).toBe("connection lost");
  });

  it("with one page in flight (the default) never hands over a second page early", async () => {
    const { box, t, d } = setup(1);
    d.start();
    await box.append(msgs(6));
    expect(await waitFor(() => t.calls.length === 1, 5000)).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(t.calls).toHaveLength(1);
    t.calls[0]!.resolve();
    expect(await waitFor(() => t.calls.length === 2, 5000)).toBe(true);
  });
});

/** Takes every batch at once, but refuses for good any batch holding a message whose n is in `refuse`. */
class RefusingTransport extends ManualTransport {
  constructor(private readonly refuse: ReadonlySet<number>) {
    super();
  }
  override send(batch: readonly Message[]): Promise<void> {
    const sent = super.send(batch);
    const call = this.calls[this.calls.length - 1]!;
    if (call.ns.some((n) => this.refuse.has(n)))
      call.reject(rejected("TOO_LARGE", "too large for this sink"));
    else call.resolve();
    return sent;
  }
}

describe("Dispatcher and a message its sink can never carry", () => {
  /** An outbox and a started dispatcher feeding a transport that refuses the messages numbered `refuse`. */
  function refusing(refuse: number[], opts: { batchSize: number; pagesInFlight?: number }) {
    const { dir, cleanup } = tempDir();
    const box = Outbox.open({ path: join(dir, "outbox.db"), failpoint: "" });
    const t = new RefusingTransport(new Set(refuse));
    const d = new Dispatcher(t, box, createLogger({ level: "error", write: () => {} }), opts);
    cleanups.push(
      cleanup,
      () => box.close(),
      () => d.stop(),
      () => t.close(),
    );
    d.start();
    return { box, t, d };
  }

  it("resends the refused page one message at a time, passes over the one refused alone, and goes on", async () => {
    const { box, t, d } = refusing([1], { batchSize: 3, pagesInFlight: 2 });
    await box.append(msgs(6));
    expect(await waitFor(() => d.status(6).cursor === 6, 5000)).toBe(true);
    expect(t.calls.map((c) => c.ns)).toEqual([[0, 1, 2], [3, 4, 5], [0], [1], [2], [3, 4, 5]]);
    const s = d.status(6);
    expect(s).toMatchObject({ skipped: 1, delivered: 5, retries: 0, lag: 0 });
    expect(s.lastError).toBe("too large for this sink");
    // The outbox holds that cursor too: it can prune the message once every sink is past it.
    expect(box.stats().sinks["manual"]).toEqual({ cursor: 6, lag: 0 });
  });

  it("a sink that refuses everything delivers nothing: lastDeliveredAt stays unset", async () => {
    const { box, d } = refusing([0, 1], { batchSize: 2 });
    await box.append(msgs(2));
    expect(await waitFor(() => d.status(2).cursor === 2, 5000)).toBe(true);
    const s = d.status(2);
    expect(s).toMatchObject({ skipped: 2, delivered: 0 });
    expect(s.lastDeliveredAt).toBeUndefined();
  });

  it("takes a failed outbox read as a failed page: retried with backoff, the loop goes on", async () => {
    const { dir, cleanup } = tempDir();
    const box = Outbox.open({ path: join(dir, "outbox.db"), failpoint: "" });
    const t = new RefusingTransport(new Set());
    const d = new Dispatcher(t, box, createLogger({ level: "error", write: () => {} }), { batchSize: 3 });
    cleanups.push(
      cleanup,
      () => box.close(),
      () => d.stop(),
      () => t.close(),
    );
    const read = box.read.bind(box);
    let failures = 1;
    box.read = (...args: Parameters<Outbox["read"]>) => {
      if (failures-- > 0) throw new Error("disk I/O error");
      return read(...args);
    };
    d.start();
    await box.append(msgs(4));
    expect(await waitFor(() => d.status(4).cursor === 4, 5000)).toBe(true);
    expect(d.status(4)).toMatchObject({ retries: 1, lastError: "disk I/O error", delivered: 4, skipped: 0 });
  });
});
