import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { HeraldError } from "../src/errors.js";
import { createMessage } from "../src/wire/message.js";
import { decodeReply, SUBMIT_PROTOCOL } from "../src/wire/submit.js";
import { collectIds, linkUp, startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

async function raw(endpoint: string, frames: Buffer[]): Promise<unknown> {
  const d = new Dealer({ linger: 0, receiveTimeout: 5000 });
  d.connect(endpoint);
  try {
    await d.send(frames);
    const reply = await d.receive();
    return decodeReply(reply).reply;
  } finally {
    d.close();
  }
}

describe("broker: submit, store, fan out", () => {
  it("acknowledges, then publishes every message on both the herald and the legacy socket", async () => {
    tb = await startTestBroker();
    const h = collectIds(tb.subscriber(["herald"]));
    const l = collectIds(tb.subscriber(["legacy"]));
    const client = tb.client();
    await linkUp(client, [h.ids, l.ids]);
    const acks = await client.publishBatch(
      Array.from({ length: 300 }, (_, i) => ({ topic: `org.example.prod.app.event${i % 3}`, body: { i } })),
    );
    expect(acks.every((a) => a.seq > 0 && !a.duplicate)).toBe(true);
    const ids = acks.map((a) => a.id);
    expect(await waitFor(() => ids.every((id) => h.ids.includes(id) && l.ids.includes(id)))).toBe(true);
  });

  it("stores and publishes an id submitted twice only once", async () => {
    tb = await startTestBroker();
    const h = collectIds(tb.subscriber(["herald"]));
    const client = tb.client();
    await linkUp(client, [h.ids]);
    const msg = createMessage({ topic: "dup.test", body: { x: 1 } });
    const [first] = await client.submit([msg]);
    const [second] = await client.submit([msg]);
    expect(first).toMatchObject({ id: msg.id, duplicate: false });
    expect(second).toMatchObject({ id: msg.id, duplicate: true });
    expect((second as { seq: number }).seq).toBe((first as { seq: number }).seq);
    const marker = await client.publish("dup.marker", {});
    expect(await waitFor(() => h.ids.includes(marker.id))).toBe(true);
    expect(h.ids.filter((id) => id === msg.id)).toHaveLength(1);
  });

  it("filters by AMQP patterns exactly and dedups across the two formats", async () => {
    tb = await startTestBroker();
    const sub = tb.subscriber(["herald", "legacy"], ["org.*.build", "probe.#"]);
    const got = collectIds(sub);
    const client = tb.client();
    await linkUp(client, [got.ids]);
    const yes = await client.publish("org.x.build", {});
    const no1 = await client.publish("org.x.buildx", {});
    const no2 = await client.publish("org.x.build.more", {});
    const end = await client.publish("probe.end", {});
    expect(await waitFor(() => got.ids.includes(end.id))).toBe(true);
    expect(got.ids).toContain(yes.id);
    expect(got.ids).not.toContain(no1.id);
    expect(got.ids).not.toContain(no2.id);
    expect(got.ids.filter((i) => i === yes.id)).toHaveLength(1);
    expect(sub.stats().duplicates).toBeGreaterThan(0);
  });

  it("answers bad input with clear errors and keeps serving other clients", async () => {
    tb = await startTestBroker();
    const P = Buffer.from(SUBMIT_PROTOCOL);
    const rid = Buffer.from("r1");
    const bad: Array<[Buffer[], RegExp]> = [
      [[randomBytes(50)], /3 frames/],
      [[P, rid], /3 frames/],
      [[Buffer.from("NOPE1"), rid, Buffer.from("{}")], /HERALD1/],
      [[P, rid, Buffer.from("{not json")], /not valid JSON/],
      [[P, rid, Buffer.from('{"messages": []}')], /no messages/],
      [[P, Buffer.alloc(100), Buffer.from('{"messages": [{}]}')], /request id/],
    ];
    const client = tb.client();
    for (const [frames, re] of bad) {
      const reply = (await raw(tb.submit, frames)) as { error: { code: string; message: string } };
      expect(reply.error.code).toBe("BAD_REQUEST");
      expect(reply.error.message).toMatch(re);
      // Another client is unaffected.
      expect((await client.publish("still.ok", {})).seq).toBeGreaterThan(0);
    }
    const perMessage = (await raw(tb.submit, [
      P,
      rid,
      Buffer.from(
        JSON.stringify({
          messages: [
            { id: "a1", topic: "a.*", body: {} },
            { id: "a2", topic: "ok.topic", body: { big: "x".repeat((1 << 20) + 1) } },
            { id: "a3", topic: "ok.topic", body: [] },
            { topic: "ok.topic", body: {} },
            { id: "a5", topic: "ok.topic", body: {}, headers: { h: { nested: true } } },
            { id: "a6", topic: "ok.topic", body: { fine: true } },
          ],
        }),
      ),
    ])) as { results: Array<{ ok: boolean; error?: { code: string } }> };
    expect(perMessage.results.map((r) => (r.ok ? "ok" : r.error!.code))).toEqual([
      "BAD_TOPIC",
      "TOO_LARGE",
      "INVALID",
      "INVALID",
      "INVALID",
      "ok",
    ]);
  });

  it("measures a body that re-encodes larger than it was sent (1e20 is 21 digits) against maxBodyBytes", async () => {
    tb = await startTestBroker({ maxBodyBytes: 200 });
    const n = Array.from({ length: 10 }, () => "1e20").join(",");
    const payload = `{"messages":[{"id":"g1","topic":"ok.topic","body":{"n":[${n}]}},{"id":"g2","topic":"ok.topic","body":{"n":[1e2]}}]}`;
    expect(payload.length).toBeLessThan(200); // sent: under the limit; stored and published: 227 bytes
    const r = (await raw(tb.submit, [
      Buffer.from(SUBMIT_PROTOCOL),
      Buffer.from("rg"),
      Buffer.from(payload),
    ])) as {
      results: Array<{ ok: boolean; error?: { code: string } }>;
    };
    expect(r.results.map((x) => (x.ok ? "ok" : x.error!.code))).toEqual(["TOO_LARGE", "ok"]);
  });

  it("keeps memory flat under a stream of garbage", async () => {
    tb = await startTestBroker();
    const d = new Dealer({ linger: 0 });
    d.connect(tb.submit);
    const round = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        await d.send([Buffer.from(SUBMIT_PROTOCOL), Buffer.from(String(i)), randomBytes(200)]);
        await d.receive();
      }
    };
    const heap = (): number => {
      global.gc?.();
      return process.memoryUsage().heapUsed;
    };
    await round(2000);
    const before = heap();
    await round(10_000);
    const growth = heap() - before;
    d.close();
    expect(typeof global.gc).toBe("function");
    expect(growth).toBeLessThan(10 * 1024 * 1024);
    expect(tb.broker.status().submit.badRequests).toBeGreaterThanOrEqual(12_000);
  });

  it("reports status and refuses with SHUTTING_DOWN while stopping", async () => {
    tb = await startTestBroker();
    const client = tb.client({ retries: 0 });
    await client.publish("s.one", {});
    const status = (await client.status()) as ReturnType<typeof tb.broker.status>;
    expect(status.broker).toBe("test");
    expect(status.outbox.headSeq).toBe(1);
    expect(status.sinks.map((s) => s.name)).toEqual(["herald", "legacy"]);
    const stopping = tb.broker.stop();
    const err = await client.publish("s.two", {}).catch((e: unknown) => e);
    await stopping;
    // Stopped by hand: the helper's stop() would stop it again, so clean up what it would have.
    await client.close();
    rmSync(tb.dir, { recursive: true, force: true });
    tb = undefined;
    expect(err).toBeInstanceOf(HeraldError);
    expect(["SHUTTING_DOWN", "TIMEOUT", "NO_BROKER"]).toContain((err as HeraldError).code);
  });
});

describe("client", () => {
  it("says there is no broker, naming the fix", async () => {
    const { HeraldClient } = await import("../src/client/publisher.js");
    const c = new HeraldClient({
      endpoint: "ipc:///tmp/herald-nowhere/submit.sock",
      timeoutMs: 200,
      retries: 1,
    });
    const err = (await c.publish("a.b", {}).catch((e: unknown) => e)) as HeraldError;
    await c.close();
    expect(err.code).toBe("NO_BROKER");
    expect(err.message).toMatch(/start `herald serve`/);
  });

  it("a long-lived client whose broker went away says NO_BROKER, not TIMEOUT", async () => {
    const { HeraldClient } = await import("../src/client/publisher.js");
    const local = await startTestBroker();
    const c = new HeraldClient({ endpoint: local.submit, timeoutMs: 150, retries: 1 });
    await c.publish("before.stop", {});
    await local.stop();
    const err = (await c.publish("after.stop", {}).catch((e: unknown) => e)) as HeraldError;
    await c.close();
    expect(err.code).toBe("NO_BROKER");
  });

  it("rejects a bad topic or oversized body before sending", async () => {
    const { HeraldClient } = await import("../src/client/publisher.js");
    const c = new HeraldClient({ endpoint: "ipc:///tmp/herald-nowhere/submit.sock", maxBodyBytes: 10 });
    await expect(c.publish("a.#", {})).rejects.toMatchObject({ code: "BAD_TOPIC" });
    await expect(c.publish("a.b", { x: "01234567890" })).rejects.toMatchObject({ code: "TOO_LARGE" });
    await c.close();
  });

  it("coalesces concurrent publishes into shared requests; each caller gets its own outcome", async () => {
    tb = await startTestBroker({ maxBodyBytes: 200 });
    const client = tb.client();
    const requests = async () =>
      ((await client.status()) as { submit: { requests: number } }).submit.requests;
    await client.publish("warm.up", {});
    const before = await requests();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 64 }, (_, i) =>
        client.publish("coal.test", { i, pad: i === 7 ? "x".repeat(300) : "" }),
      ),
    );
    // 64 callers, one status request after: far fewer than 64 submit requests reached the broker.
    expect((await requests()) - before - 1).toBeLessThanOrEqual(2);
    const rejected = outcomes.flatMap((o, i) => (o.status === "rejected" ? [[i, o.reason]] : []));
    expect(rejected).toHaveLength(1);
    expect(rejected[0]![0]).toBe(7);
    expect(rejected[0]![1]).toMatchObject({ code: "TOO_LARGE" });
    const seqs = outcomes.flatMap((o) => (o.status === "fulfilled" ? [o.value.seq] : []));
    expect(new Set(seqs).size).toBe(63);
  });

  it("sends a submit larger than maxBatch in requests of its own, beside coalesced callers", async () => {
    tb = await startTestBroker();
    const client = tb.client({ maxBatch: 10 });
    const big = Array.from({ length: 25 }, (_, i) => ({ topic: "big.batch", body: { i } }));
    const [acks, small] = await Promise.all([
      client.publishBatch(big),
      Promise.all(Array.from({ length: 15 }, (_, i) => client.publish("small.one", { i }))),
    ]);
    expect(acks.map((a) => a.seq)).toEqual([...acks.map((a) => a.seq)].sort((a, b) => a - b));
    expect(new Set([...acks, ...small].map((a) => a.seq)).size).toBe(40);
  });

  it("a coalesced request that fails as a whole rejects every caller in it", async () => {
    const { HeraldClient } = await import("../src/client/publisher.js");
    const c = new HeraldClient({
      endpoint: "ipc:///tmp/herald-nowhere/submit.sock",
      timeoutMs: 100,
      retries: 0,
    });
    const all = await Promise.allSettled([c.publish("a.b", {}), c.publish("a.c", {}), c.publish("a.d", {})]);
    await c.close();
    expect(all.map((o) => o.status === "rejected" && (o.reason as HeraldError).code)).toEqual([
      "NO_BROKER",
      "NO_BROKER",
      "NO_BROKER",
    ]);
  });

  it("serves many concurrent callers on one socket", async () => {
    tb = await startTestBroker();
    const client = tb.client();
    const acks = await Promise.all(Array.from({ length: 500 }, (_, i) => client.publish("conc.test", { i })));
    expect(new Set(acks.map((a) => a.id)).size).toBe(500);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(500);
  });
});
