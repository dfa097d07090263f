/**
 * An id already stored is a duplicate only when the message is the same (a retry, another route, the
 * shim's second path); another message with that id is refused ID_CONFLICT, never answered "ok" and
 * dropped (security review: whoever stored an id first could suppress the genuine message silently).
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Ack } from "../src/client/publisher.js";
import { errorFromWire, HeraldError, MessageRejectedError } from "../src/errors.js";
import { INGESTED_BY, INGESTED_FROM, VOUCHED } from "../src/shim/ingest.js";
import { Outbox } from "../src/storage/index.js";
import { ForwardTransport } from "../src/transport/forward.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { tempDir } from "./fixtures/outbox-helpers.js";
import { collectMessages, linkUp, startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function broker(extra: Parameters<typeof startTestBroker>[0] = {}): Promise<TestBroker> {
  const b = await startTestBroker(extra);
  cleanups.push(() => b.stop());
  return b;
}

/** A broker with a herald-format subscriber whose link is up. */
async function brokerWithSubscriber(): Promise<{ b: TestBroker; got: Message[] }> {
  const b = await broker();
  const got = collectMessages(b.subscriber(["herald"]));
  const seen: string[] = [];
  const watch = setInterval(() => seen.splice(0, seen.length, ...got.map((m) => m.id)), 10);
  cleanups.push(() => clearInterval(watch));
  await linkUp(b.client(), [seen]);
  return { b, got };
}

function conflictOf(r: Ack | HeraldError | undefined): HeraldError {
  if (!(r instanceof HeraldError)) throw new Error(`expected ID_CONFLICT, got ${JSON.stringify(r)}`);
  return r;
}

const genuine = (): Message =>
  createMessage({ topic: "org.example.bob.release", body: { version: "1.2.3" }, headers: { severity: 20 } });

describe("a second message with a stored id", () => {
  it("is refused ID_CONFLICT (typed, not retryable, naming id and fix); subscribers keep the first", async () => {
    const { b, got } = await brokerWithSubscriber();
    const c = b.client();
    const first = genuine();
    const [ack] = await c.submit([first]);
    expect(ack).toMatchObject({ duplicate: false });
    const squat = { ...first, topic: "org.example.alice.noise", body: { junk: true } };
    const [r] = await c.submit([squat]);
    const err = conflictOf(r);
    expect(err).toBeInstanceOf(MessageRejectedError);
    expect(err.code).toBe("ID_CONFLICT");
    expect(err.retryable).toBe(false);
    expect(err.details["id"]).toBe(first.id);
    expect(err.message).toBe(
      `message "${first.id}": id already stored with different content (topic org.example.alice.noise, ` +
        "stored org.example.bob.release): ids must be unique; publish it with a new id (createMessage() " +
        "makes one). The stored message is the one delivered",
    );
    // publish() rejects with it.
    await expect(
      c.publish("org.example.bob.release", { version: "9" }, { id: first.id }),
    ).rejects.toMatchObject({
      code: "ID_CONFLICT",
      retryable: false,
    });
    const after = await c.publish("org.example.after", { n: 1 });
    expect(await waitFor(() => got.some((m) => m.id === after.id))).toBe(true);
    const copies = got.filter((m) => m.id === first.id);
    expect(copies.map((m) => m.body)).toEqual([{ version: "1.2.3" }]);
    expect(b.broker.status().outbox.headSeq).toBe((ack as Ack).seq + 1);
  });

  it("differing only in schema, a header or the body is another message", async () => {
    const b = await broker();
    const c = b.client();
    const first = genuine();
    await c.submit([first]);
    const variants: Array<[Message, RegExp]> = [
      [{ ...first, schema: "other.schema" }, /schema other.schema v1, stored base.message v1/],
      [{ ...first, schemaVersion: 2 }, /schema base.message v2, stored base.message v1/],
      [{ ...first, headers: { severity: 40 } }, /header "severity" differs/],
      [{ ...first, headers: { severity: 20, extra: "x" } }, /header "extra" differs/],
      [{ ...first, body: { version: "1.2.4" } }, /body differs; topic org.example.bob.release/],
    ];
    const results = await c.submit(variants.map(([m]) => m));
    results.forEach((r, i) => {
      expect(conflictOf(r).code).toBe("ID_CONFLICT");
      expect(conflictOf(r).message).toMatch(variants[i]![1]);
    });
  });

  it("resent identically, or by another route (via, origin, signature and shim headers), is a duplicate", async () => {
    const { b, got } = await brokerWithSubscriber();
    const c = b.client();
    const first = genuine();
    const [ack] = (await c.submit([first])) as Ack[];
    const again = [
      first,
      { ...first, via: ["edge01", "edge02"] },
      { ...first, origin: { host: "elsewhere", app: "relay", pid: 0, user: "nobody" } },
      {
        ...first,
        headers: {
          ...first.headers,
          "herald.signer": "k1",
          "herald.sig": "AAAA",
          [VOUCHED]: "legacy",
          [INGESTED_BY]: "broker2",
          [INGESTED_FROM]: "relay_inbound",
          "herald.hop.edge": "x",
          "x-delivery-count": 2,
        },
      },
      // Sent again later under the same id (an idempotency key, or a broker-chosen sent_at on a retry).
      { ...first, sentAt: "2030-01-01T00:00:00.000Z" },
      // The body in another key order: compared canonically.
      { ...first, body: JSON.parse('{"version":"1.2.3"}') },
    ];
    for (const m of again) {
      const [r] = await c.submit([m]);
      expect(r).toMatchObject({ duplicate: true, seq: ack!.seq });
    }
    const after = await c.publish("org.example.after", { n: 1 });
    expect(await waitFor(() => got.some((m) => m.id === after.id))).toBe(true);
    expect(got.filter((m) => m.id === first.id)).toHaveLength(1);
  });

  it("in one batch: the same message twice is a duplicate, another one with that id ID_CONFLICT", async () => {
    const b = await broker();
    const c = b.client();
    const a = genuine();
    const results = await c.submit([a, { ...a, via: ["x"] }, { ...a, body: { version: "6.6.6" } }]);
    expect(results[0]).toMatchObject({ duplicate: false });
    expect(results[1]).toMatchObject({ duplicate: true, seq: (results[0] as Ack).seq });
    expect(conflictOf(results[2]).message).toMatch(/body differs/);
    expect(b.broker.status().outbox.headSeq).toBe((results[0] as Ack).seq);
  });
});

describe("the outbox", () => {
  function open(): Outbox {
    const { dir, cleanup } = tempDir();
    const box = Outbox.open({ path: join(dir, "outbox.db"), failpoint: "" });
    cleanups.push(() => {
      box.close();
      cleanup();
    });
    return box;
  }

  it("compares against a row read back from disk after a reopen", () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    const path = join(dir, "outbox.db");
    const a = genuine();
    const first = Outbox.open({ path, failpoint: "" });
    first.appendSync([a]);
    first.close();
    const box = Outbox.open({ path, failpoint: "" });
    cleanups.push(() => box.close());
    expect(box.appendSync([{ ...a, origin: { ...a.origin, pid: 1 } }])[0]).toMatchObject({ duplicate: true });
    const [r] = box.appendSync([{ ...a, topic: "org.example.other" }]);
    expect(r?.ok === false && r.error.code).toBe("ID_CONFLICT");
  });

  it("a herald message back through fedmsg (vouched, no fedmsg.* headers) is compared on topic and body only", () => {
    const box = open();
    const a = genuine();
    box.appendSync([a]);
    // What decodeLegacyEnvelope makes of `<YEAR>-<id>`: sentAt to the second, default schema, no headers.
    const back: Message = {
      ...a,
      sentAt: `${a.sentAt.slice(0, 19)}.000Z`,
      schema: "base.message",
      schemaVersion: 1,
      headers: { [VOUCHED]: "legacy", [INGESTED_FROM]: "relay_inbound" },
    };
    expect(box.appendSync([back])[0]).toMatchObject({ ok: true, duplicate: true, seq: 1 });
    const [forged] = box.appendSync([{ ...back, body: { version: "6.6.6" } }]);
    expect(forged?.ok === false && forged.error.code).toBe("ID_CONFLICT");
    // A legacy message read with its fedmsg.* headers is compared in full.
    const [withHeaders] = box.appendSync([{ ...back, headers: { ...back.headers, "fedmsg.timestamp": 1 } }]);
    expect(withHeaders?.ok === false && withHeaders.error.code).toBe("ID_CONFLICT");
    // The same copy with nobody vouching for it (a cassette recorded on a legacy socket, replayed).
    const replayed = { ...back, headers: {} };
    expect(box.appendSync([replayed])[0]).toMatchObject({ ok: true, duplicate: true, seq: 1 });
  });

  it("a legacy message read twice, once re-serialised by a relay, is a duplicate", () => {
    const box = open();
    const env = { "fedmsg.timestamp": 1700000000, "fedmsg.i": 4 };
    const a: Message = {
      ...genuine(),
      id: "2024-legacy-1",
      headers: { ...env, "fedmsg.extra": '{"a":1,"b":[1,2]}', "fedmsg.envelope": '{"i": 4, "msg": {}}' },
    };
    box.appendSync([a]);
    const again = { ...a, headers: { ...env, "fedmsg.extra": '{"b": [1, 2], "a": 1}' } };
    expect(box.appendSync([again])[0]).toMatchObject({ ok: true, duplicate: true, seq: 1 });
    const other = { ...a, headers: { ...env, "fedmsg.extra": '{"a":2,"b":[1,2]}' } };
    const [r] = box.appendSync([other]);
    expect(r?.ok === false && r.error.code).toBe("ID_CONFLICT");
  });
});

describe("ID_CONFLICT on the wire and at a forwarding sink", () => {
  it("is rebuilt as a non-retryable MessageRejectedError", () => {
    const e = errorFromWire({ code: "ID_CONFLICT", message: "m" });
    expect(e).toBeInstanceOf(MessageRejectedError);
    expect(e).toMatchObject({ code: "ID_CONFLICT", retryable: false });
  });

  it("a forward sink passes over a message whose id the hub holds with other content, and goes on", async () => {
    const [port] = await freePorts(1);
    const endpoint = `tcp://127.0.0.1:${port}`;
    const hub = await broker({ name: "hub", submitEndpoints: [endpoint] });
    const fwd = new ForwardTransport({ name: "to-hub", endpoint, brokerName: "edge", timeoutMs: 1000 });
    const edge = await broker({ name: "edge", extraSinks: [fwd] });
    const taken = genuine();
    await hub.client({ endpoint }).submit([{ ...taken, body: { squatted: true } }]);
    const c = edge.client();
    await c.submit([taken]);
    const later = await c.publishBatch([
      { topic: "org.example.later", body: { n: 1 } },
      { topic: "org.example.later", body: { n: 2 } },
    ]);
    const sink = () => edge.broker.status().sinks.find((s) => s.name === "to-hub")!;
    // Before: held and retried forever (a security-like refusal), so nothing after it was forwarded.
    expect(await waitFor(() => sink().cursor >= later[1]!.seq, 15_000)).toBe(true);
    expect(sink()).toMatchObject({ delivered: 2, skipped: 1 });
    expect(sink().lastError).toMatch(/id already stored with different content/);
    expect(hub.broker.status().outbox.headSeq).toBe(3);
  });
});
