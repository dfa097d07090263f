import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Dispatcher } from "../src/broker/dispatcher.js";
import { type Gap, Subscriber } from "../src/client/subscriber.js";
import { type HeraldError, MessageRejectedError } from "../src/errors.js";
import { Outbox } from "../src/storage/index.js";
import { MEMORY_BUS_DEFAULTS, MemoryBus } from "../src/transport/memory.js";
import type { Delivery, Subscription } from "../src/transport/types.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../src/transport/zeromq-common.js";
import { silentLogger } from "../src/util/log.js";
import { decodeEnvelope } from "../src/wire/herald.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { tempDir } from "./fixtures/outbox-helpers.js";
import { waitFor } from "./helpers/broker.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A bus with an open sender and receiver, closed after the test. */
async function link(bus = new MemoryBus()) {
  const tx = bus.transport("tx");
  const rx = bus.transport("rx");
  await tx.open();
  await rx.open();
  cleanups.push(
    () => tx.close(),
    () => rx.close(),
  );
  return { bus, tx, rx };
}

/** A message whose body createMessage would refuse (the transport must refuse it too). */
function withBody(topic: string, body: unknown): Message {
  return { ...createMessage({ topic, body: {} }), body: body as Message["body"] };
}

/** Everything a subscription holds right now (the memory bus delivers during send). */
async function drain(sub: Subscription): Promise<Delivery[]> {
  const out: Delivery[] = [];
  const it = sub[Symbol.asyncIterator]();
  await sub.close();
  for (let r = await it.next(); !r.done; r = await it.next()) out.push(r.value);
  return out;
}

describe("MemoryBus", () => {
  it("keeps in history what was sent, even when the sender reuses its body object", async () => {
    const { bus, tx } = await link();
    const body = { n: 0 };
    for (let i = 1; i <= 3; i++) {
      body.n = i;
      await tx.send([createMessage({ topic: "t.x", body })]);
    }
    expect(bus.history.map((m) => m.body["n"])).toEqual([1, 2, 3]);
  });

  it("detaches a closed transport's subscriptions: it stops counting and ends its iterators", async () => {
    const { tx, rx } = await link();
    const it = rx.receive({ patterns: ["t.#"] })[Symbol.asyncIterator]();
    await tx.send([createMessage({ topic: "t.x", body: { n: 1 } })]);
    expect((await it.next()).value?.message.body["n"]).toBe(1);
    await rx.close();
    expect(rx.health().received).toBe(1);
    await tx.send([createMessage({ topic: "t.x", body: { n: 2 } })]);
    expect(rx.health().received).toBe(1);
    expect((await it.next()).done).toBe(true);
  });
});

describe("MemoryBus carries the herald wire form, as a ZeroMQ herald socket does", () => {
  it("delivers what a real subscriber decodes: an undefined field absent, the envelope bytes in raw", async () => {
    const { bus, tx, rx } = await link();
    const sub = rx.receive({ patterns: ["#"] });
    const sent = withBody("w.x", { keep: [1, "two", null], gone: undefined });
    await tx.send([sent]);
    const [d] = await drain(sub);
    expect(d?.message.body).toEqual({ keep: [1, "two", null] });
    expect(Object.keys(d?.message.body ?? {})).toEqual(["keep"]);
    expect(d?.raw).toBeInstanceOf(Buffer);
    expect(decodeEnvelope(d!.raw!)).toEqual(d?.message);
    expect(d?.message).toMatchObject({ id: sent.id, seq: 1, stream: expect.any(String) });
    expect(d?.via).toBe("memory:tx");
    expect(bus.history).toEqual([d?.message]);
    // Copies: what one reader changes, the history and other readers never see.
    d!.message.body["keep"] = "changed";
    expect(bus.history[0]?.body["keep"]).toEqual([1, "two", null]);
  });

  it("refuses, typed, a body JSON cannot carry, delivering nothing of the batch", async () => {
    const { bus, tx, rx } = await link();
    const sub = rx.receive({ patterns: ["#"] });
    const bodies: Record<string, unknown> = {
      Date: { when: new Date("2026-01-01T00:00:00Z") },
      Map: { m: new Map([["a", 1]]) },
      NaN: { n: Number.NaN },
      BigInt: { n: 10n },
      function: { cb: () => 1 },
    };
    for (const [kind, body] of Object.entries(bodies)) {
      const ok = createMessage({ topic: "w.ok", body: { kind } });
      const err = await tx.send([ok, withBody("w.bad", body)]).catch((e: unknown) => e);
      expect(err, kind).toBeInstanceOf(MessageRejectedError);
      expect((err as HeraldError).code, kind).toBe("INVALID");
    }
    expect(await drain(sub)).toEqual([]);
    expect(bus.history).toEqual([]);
    expect(tx.health()).toMatchObject({ sent: 0, counters: { unencodable: 5 } });
    // A refused batch burns no sequence numbers: the next message is still seq 1.
    await tx.send([createMessage({ topic: "w.ok", body: {} })]);
    expect(bus.history[0]?.seq).toBe(1);
  });

  it("refuses an envelope over maxMessageBytes with TOO_LARGE, headers counted, nothing delivered", async () => {
    const { bus, tx, rx } = await link(new MemoryBus({ maxMessageBytes: 4096 }));
    const sub = rx.receive({ patterns: ["#"] });
    const small = createMessage({ topic: "s.ok", body: { n: 1 } });
    const bigBody = createMessage({ topic: "s.big", body: { b: "x".repeat(4096) } });
    const bigHeaders = createMessage({ topic: "s.hdr", body: {}, headers: { h: "y".repeat(4096) } });
    for (const big of [bigBody, bigHeaders]) {
      const err = await tx.send([small, big]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MessageRejectedError);
      expect((err as HeraldError).code).toBe("TOO_LARGE");
    }
    expect(await drain(sub)).toEqual([]);
    expect(bus.history).toEqual([]);
    expect(tx.health().counters["tooLarge"]).toBe(2);
  });

  it("skips, counted as malformed, an envelope a ZeroMQ subscriber would skip", async () => {
    const { bus, tx, rx } = await link();
    const sub = rx.receive({ patterns: ["#"] });
    // A sink is handed what the broker accepted; a hand-made message can still break the topic rules.
    await tx.send([{ ...createMessage({ topic: "m.x", body: {} }), topic: "m..x" }]);
    expect(await drain(sub)).toEqual([]);
    expect(rx.health().counters["malformed"]).toBe(1);
    expect(bus.history).toEqual([]);
  });

  it("takes ZeroMQ's default envelope limit by default", () => {
    expect(new MemoryBus().maxMessageBytes).toBe(DEFAULT_MAX_MESSAGE_BYTES);
  });

  it("lets the dispatcher pass over a message too large for a memory sink, as for a ZeroMQ one", async () => {
    const { dir, cleanup } = tempDir();
    const box = Outbox.open({ path: join(dir, "outbox.db"), failpoint: "" });
    const bus = new MemoryBus({ maxMessageBytes: 4096 });
    const sink = bus.transport("mem-sink");
    const d = new Dispatcher(sink, box, silentLogger);
    cleanups.push(
      cleanup,
      () => box.close(),
      () => d.stop(),
      () => sink.close(),
    );
    d.start();
    await box.append([
      createMessage({ topic: "d.big", body: { b: "x".repeat(5000) } }),
      createMessage({ topic: "d.small", body: { n: 1 } }),
    ]);
    expect(await waitFor(() => d.status(2).cursor === 2, 5000)).toBe(true);
    expect(d.status(2)).toMatchObject({ skipped: 1, delivered: 1 });
    expect(bus.history.map((m) => m.topic)).toEqual(["d.small"]);
  });
});

describe("MemoryBus bounds", () => {
  it("drops for a full subscription alone, counts it, and a Subscriber reports the gap", async () => {
    const { tx, rx } = await link(new MemoryBus({ queueLimit: 5 }));
    const unread = rx.receive({ patterns: ["#"] });
    const gaps: Gap[] = [];
    const sub = new Subscriber({ sources: [rx], onGap: (g) => gaps.push(g) });
    cleanups.push(() => sub.close());
    // One send delivers the whole batch before any reader runs: the Subscriber's waiting reader takes the
    // first, its queue the next 5, and 6 and 7 are dropped; the unread subscription keeps 0 to 4.
    await tx.send(Array.from({ length: 8 }, (_, n) => createMessage({ topic: "q.x", body: { n } })));
    await new Promise((r) => setImmediate(r)); // the Subscriber has read its subscription empty
    await tx.send([createMessage({ topic: "q.x", body: { n: 8 } })]);
    const got: unknown[] = [];
    for await (const m of sub) if (got.push(m.message.body["n"]) === 7) break;
    expect(got).toEqual([0, 1, 2, 3, 4, 5, 8]);
    expect(gaps).toEqual([expect.objectContaining({ expected: 7, received: 9, missed: 2 })]);
    expect((await drain(unread)).map((d) => d.message.body["n"])).toEqual([0, 1, 2, 3, 4]);
    // 2 for the Subscriber's subscription, 4 for the unread one (still full for n = 8).
    expect(rx.health().counters["deliveriesDropped"]).toBe(6);
  });

  it("does not drop at the volumes unit tests send: 10,000 unread messages all arrive", async () => {
    const { tx, rx } = await link();
    const sub = rx.receive({ patterns: ["#"] });
    const batch = Array.from({ length: 100 }, (_, n) => createMessage({ topic: "v.x", body: { n } }));
    for (let i = 0; i < MEMORY_BUS_DEFAULTS.queueLimit / 100; i++) await tx.send(batch);
    expect(await drain(sub)).toHaveLength(MEMORY_BUS_DEFAULTS.queueLimit);
    expect(rx.health().counters["deliveriesDropped"]).toBeUndefined();
  });

  it("keeps the newest historyLimit messages in history, also after every transport closed", async () => {
    const { bus, tx, rx } = await link(new MemoryBus({ historyLimit: 3 }));
    for (let n = 0; n < 10; n++) await tx.send([createMessage({ topic: "h.x", body: { n } })]);
    await tx.close();
    await rx.close();
    expect(bus.history.map((m) => m.body["n"])).toEqual([7, 8, 9]);
    bus.historyLimit = 1;
    const again = bus.transport("again");
    await again.send([createMessage({ topic: "h.x", body: { n: 5 } })]);
    expect(bus.history.map((m) => m.body["n"])).toEqual([5]);
    const none = new MemoryBus({ historyLimit: 0 });
    await none.transport().send([createMessage({ topic: "h.x", body: {} })]);
    expect(none.history).toEqual([]);
  });
});
