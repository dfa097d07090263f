import { afterEach, describe, expect, it } from "vitest";
import type { Ack } from "../src/client/publisher.js";
import { HeraldError, MessageRejectedError } from "../src/errors.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

describe("HeraldClient requests", () => {
  it("splits one caller's batch bigger than a request may be, instead of timing out on it", async () => {
    // The broker drops a connection whose request exceeds maxBodyBytes * 4 + 1 MiB (5 MiB here): 60
    // messages of 100 KB went as one request, and the client retried it until TIMEOUT.
    tb = await startTestBroker();
    const c = tb.client({ timeoutMs: 3000, retries: 0 });
    const inputs = Array.from({ length: 60 }, (_, i) => ({
      topic: "org.test.big",
      body: { i, s: "x".repeat(100_000) },
    }));
    const results = await c.publishMany(inputs);
    expect(results.filter((r) => r instanceof HeraldError)).toEqual([]);
    const seqs = (results as Ack[]).map((r) => r.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b)); // in order
    expect(new Set(seqs).size).toBe(60);
    const status = (await c.status()) as { outbox: { headSeq: number } };
    expect(status.outbox.headSeq).toBe(60);
  });

  it("publishMany refuses a bad input in its own slot and sends the others", async () => {
    tb = await startTestBroker();
    const c = tb.client();
    const results = await c.publishMany([
      { topic: "org.test.a", body: { n: 1 } },
      { topic: "org.test.a", body: { s: "x".repeat(2 << 20) } },
      { topic: "not a topic", body: {} },
      { topic: "org.test.a", body: { n: 3 } },
    ]);
    expect(results[0]).toMatchObject({ duplicate: false });
    expect(results[1]).toBeInstanceOf(MessageRejectedError);
    expect(results[1]).toMatchObject({ code: "TOO_LARGE" });
    expect(results[2]).toMatchObject({ code: "BAD_TOPIC" });
    expect(results[3]).toMatchObject({ duplicate: false });
    expect((results[3] as Ack).seq).toBe((results[0] as Ack).seq + 1);
  });
});
