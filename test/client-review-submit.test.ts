import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Dealer, Router } from "zeromq";
import { HeraldClient } from "../src/client/publisher.js";
import { HeraldError, MessageRejectedError } from "../src/errors.js";
import { decodeReply } from "../src/wire/submit.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

let tb: TestBroker | undefined;
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
  for (const c of cleanups.splice(0)) await c();
});

/**
 * A stand-in broker on a ROUTER socket that answers every request it receives with one ok result per
 * message, when `hold` lets it: the test decides when each reply goes out.
 */
async function fakeBroker(hold: (requestId: string, reply: () => Promise<void>) => void) {
  const dir = mkdtempSync(join(tmpdir(), "herald-review-"));
  const endpoint = `ipc://${join(dir, "submit.sock")}`;
  const router = new Router({ linger: 0 });
  await router.bind(endpoint);
  const received: string[] = [];
  let seq = 0;
  void (async () => {
    for await (const [routing, proto, rid, payload] of router) {
      const requestId = rid!.toString();
      received.push(requestId);
      const ids = (JSON.parse(payload!.toString()) as { messages: Array<{ id: string }> }).messages;
      const results = ids.map((m) => ({ ok: true, id: m.id, seq: ++seq, accepted_at: "", duplicate: false }));
      hold(requestId, () => router.send([routing!, proto!, rid!, JSON.stringify({ results })]));
    }
  })().catch(() => {});
  cleanups.push(() => {
    router.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { endpoint, received };
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("HeraldClient: review of the submit path", () => {
  it("a request that times out does not take the other requests' replies with it", async () => {
    // The first request is slow (its first try gets no reply); a second one, sent on the same socket,
    // is answered only after the first was retried on a fresh socket. That reply must still count:
    // closing the shared socket threw it away, the second request timed out and was sent again.
    const replies = new Map<string, () => Promise<void>>();
    let firstId = "";
    let firstTries = 0;
    const fake = await fakeBroker((rid, reply) => {
      if (firstId === "") firstId = rid;
      if (rid === firstId && ++firstTries === 1) return; // the slow reply: never comes
      if (rid === firstId) for (const send of [...replies.values(), reply]) void send();
      else replies.set(rid, reply);
    });
    const c = new HeraldClient({ endpoint: fake.endpoint, timeoutMs: 1000, retries: 1 });
    cleanups.unshift(() => c.close());
    const first = c.publish("org.test.slow", { n: 1 });
    await until(() => fake.received.length === 1, "the first request");
    // Well inside the first try's timeout, and well before its own: sent on the same socket.
    await new Promise((r) => setTimeout(r, 400));
    const second = c.publish("org.test.fast", { n: 2 });
    await expect(first).resolves.toMatchObject({ duplicate: false });
    await expect(second).resolves.toMatchObject({ duplicate: false });
    const secondId = fake.received.find((id) => id !== firstId)!;
    expect(fake.received.filter((id) => id === secondId)).toHaveLength(1); // no retry: its reply arrived
    expect(fake.received.filter((id) => id === firstId)).toHaveLength(2);
  });

  it("splits requests the broker refuses for its lower maxBatch, and keeps to its limit afterwards", async () => {
    tb = await startTestBroker({ maxBatch: 10 });
    const c = tb.client(); // maxBatch 1000: it does not know the broker's
    const concurrent = await Promise.allSettled(
      Array.from({ length: 25 }, (_, i) => c.publish("org.test.batch", { i })),
    );
    expect(concurrent.filter((r) => r.status === "rejected")).toEqual([]);
    const many = await c.publishMany(
      Array.from({ length: 23 }, (_, i) => ({ topic: "org.test.b", body: { i } })),
    );
    expect(many.filter((r) => r instanceof HeraldError)).toEqual([]);
    const seqs = [
      ...concurrent.map((r) => (r as PromiseFulfilledResult<{ seq: number }>).value.seq),
      ...many.map((r) => (r as { seq: number }).seq),
    ];
    expect(new Set(seqs).size).toBe(48);
    const status = (await c.status()) as { outbox: { headSeq: number } };
    expect(status.outbox.headSeq).toBe(48);
  });

  it("says its maxBatch as a field of the refusal, which is what the client splits by", async () => {
    tb = await startTestBroker({ maxBatch: 10 });
    const d = new Dealer({ linger: 0, receiveTimeout: 10_000 });
    d.connect(tb.submit);
    cleanups.push(() => d.close());
    const messages = Array.from({ length: 11 }, (_, i) => ({ id: `m${i}`, topic: "org.test.t", body: {} }));
    await d.send(["HERALD1", "r1", JSON.stringify({ messages })]);
    const { reply } = decodeReply(await d.receive());
    expect(reply).toMatchObject({ error: { code: "BAD_REQUEST", max_batch: 10 } });
  });

  it("refuses a message too big for any request in its slot, naming the field, instead of a TIMEOUT", async () => {
    tb = await startTestBroker(); // maxBodyBytes 1 MiB: requests up to 5 MiB
    const c = tb.client({ timeoutMs: 1000, retries: 0 });
    const results = await c.publishMany([
      { topic: "org.test.a", body: { n: 1 }, headers: { big: "x".repeat(6 << 20) } },
      { topic: "org.test.a", body: { n: 2 }, origin: { host: "h".repeat(6 << 20) } },
      { topic: "org.test.a", body: { n: 3 } },
    ]);
    expect(results[0]).toBeInstanceOf(MessageRejectedError);
    expect(results[0]).toMatchObject({
      code: "TOO_LARGE",
      details: { field: "header 'big'", limit: 5 << 20 },
    });
    expect((results[0] as HeraldError).message).toContain("header 'big'");
    expect(results[1]).toMatchObject({
      code: "TOO_LARGE",
      details: { field: "origin.host", limit: 5 << 20 },
    });
    expect((results[1] as HeraldError).message).toMatch(/limit of 5242880 .*its origin\.host is \d+ bytes/s);
    expect(results[2]).toMatchObject({ duplicate: false, seq: 1 });
    await expect(c.publish("org.test.a", {}, { headers: { h: "y".repeat(6 << 20) } })).rejects.toMatchObject({
      code: "TOO_LARGE",
    });
  });
});
