import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import type { Submitter } from "../src/broker/local-submit.js";
import type { Ack } from "../src/client/publisher.js";
import { type HeraldError, rejected } from "../src/errors.js";
import { generateIdentity, type Identity } from "../src/security/keys.js";
import { Ingest } from "../src/shim/ingest.js";
import { silentLogger } from "../src/util/log.js";
import { encodeLegacyFrames } from "../src/wire/legacy.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A broker stand-in: answers each message by its topic's last word, and records what it was given. */
function scriptedBroker(): Submitter & { calls: Message[][]; fullLeft: number; throwLeft: number } {
  const s = {
    calls: [] as Message[][],
    fullLeft: 2,
    throwLeft: 1,
    async submit(messages: readonly Message[]): Promise<Array<Ack | HeraldError>> {
      s.calls.push([...messages]);
      if (s.throwLeft > 0 && messages.some((m) => m.topic.endsWith(".data"))) {
        s.throwLeft--;
        throw rejected("TIMEOUT", "no answer from the broker");
      }
      return messages.map((m) => {
        if (m.topic.endsWith(".full") && s.fullLeft-- > 0) return rejected("OUTBOX_FULL", "outbox full");
        if (m.topic.endsWith(".bad")) return rejected("UNAUTHORIZED_TOPIC", "not yours");
        return { id: m.id, seq: 1, acceptedAt: "", duplicate: false };
      });
    },
  };
  return s;
}

/** A legacy PUB and an Ingest reading it, linked up (ZeroMQ's slow joiner) by probes the broker saw. */
async function linkedIngest(broker: ReturnType<typeof scriptedBroker>, identity?: Identity) {
  const pub = new zmq.Publisher({ linger: 0 });
  await pub.bind("tcp://127.0.0.1:*");
  cleanups.push(() => pub.close());
  const ingest = new Ingest({
    submitter: broker,
    brokerName: "test",
    log: silentLogger,
    ...(identity ? { identity } : {}),
  });
  cleanups.push(() => ingest.close());
  ingest.read("svc.test", pub.lastEndpoint!, { host: "h", app: "a" });
  const probe = createMessage({ topic: "org.test.svc.probe", body: {} });
  for (let i = 0; i < 100 && broker.calls.length === 0; i++) {
    await pub.send(encodeLegacyFrames(probe, 0));
    await waitFor(() => broker.calls.length > 0, 50);
  }
  return { pub, ingest };
}

describe("shim ingest, when the broker cannot take messages now", () => {
  it("retries a failed request and retryable refusals with the same ids; drops only permanent refusals", async () => {
    const broker = scriptedBroker();
    const { pub, ingest } = await linkedIngest(broker);
    const probes = ingest.counters("svc.test").ingested;
    expect(probes).toBeGreaterThan(0);

    const sent = [
      ...Array.from({ length: 10 }, (_, i) => createMessage({ topic: "org.test.svc.data", body: { i } })),
      createMessage({ topic: "org.test.svc.full", body: {} }),
      createMessage({ topic: "org.test.svc.bad", body: {} }),
    ];
    for (const [i, m] of sent.entries()) await pub.send(encodeLegacyFrames(m, i + 1));

    const c = ingest.counters("svc.test");
    expect(await waitFor(() => c.ingested + c.rejected === probes + sent.length, 10_000)).toBe(true);
    expect(c).toMatchObject({ ingested: probes + 11, rejected: 1, dropped: 0 });
    expect(broker.throwLeft).toBe(0);
    expect(broker.fullLeft).toBeLessThanOrEqual(0);
    // The outbox-full message went three times, with the id it was read with; the refused one once.
    const submitted = broker.calls.flat();
    const full = submitted.filter((m) => m.topic.endsWith(".full"));
    expect(full).toHaveLength(3);
    expect(new Set(full.map((m) => m.id)).size).toBe(1);
    expect(submitted.filter((m) => m.topic.endsWith(".bad"))).toHaveLength(1);
  });

  it("skips a message it cannot sign (counted malformed) and keeps reading the endpoint", async () => {
    const keys = mkdtempSync(join(tmpdir(), "herald-ingestkeys-"));
    cleanups.push(() => rmSync(keys, { recursive: true, force: true }));
    const broker = scriptedBroker();
    const { pub, ingest } = await linkedIngest(broker, generateIdentity("shim", keys));
    const c = ingest.counters("svc.test");
    const before = c.ingested;
    // 1e400 is valid JSON that JavaScript reads as Infinity, which no signature (canonical JSON) covers.
    const infinite = `{"i":1,"msg":{"n":1e400},"msg_id":"2026-inf","timestamp":1700000000,"topic":"org.test.svc.inf","username":"u"}`;
    await pub.send(["org.test.svc.inf", infinite]);
    const after = createMessage({ topic: "org.test.svc.data", body: { ok: true } });
    await pub.send(encodeLegacyFrames(after, 2));
    expect(await waitFor(() => c.ingested === before + 1, 10_000)).toBe(true);
    expect(c.malformed).toBe(1);
    expect(broker.calls.flat().map((m) => m.topic)).toContain("org.test.svc.data");
  });

  it("counts what the broker never took as dropped when it stops", async () => {
    const pub = new zmq.Publisher({ linger: 0 });
    await pub.bind("tcp://127.0.0.1:*");
    cleanups.push(() => pub.close());
    let attempts = 0;
    let lastBatch = 0;
    const down: Submitter = {
      async submit(messages) {
        attempts++;
        lastBatch = messages.length;
        throw rejected("NO_BROKER", "no broker");
      },
    };
    const ingest = new Ingest({ submitter: down, brokerName: "test", log: silentLogger });
    ingest.read("svc.test", pub.lastEndpoint!, { host: "h", app: "a" });
    const c = ingest.counters("svc.test");
    for (let i = 0; i < 100 && c.lastSeenAt === undefined; i++) {
      await pub.send(encodeLegacyFrames(createMessage({ topic: "org.test.svc.x", body: { i } }), i));
      await waitFor(() => c.lastSeenAt !== undefined, 50);
    }
    await waitFor(() => attempts > 0, 5000);
    const tried = attempts;
    await ingest.close();
    // close() kept trying for its 2 s (the backoff it was in cut short), then counted the rest lost.
    expect(attempts).toBeGreaterThan(tried);
    expect(c.ingested).toBe(0);
    expect(c.dropped).toBeGreaterThan(0);
    expect(c.dropped).toBe(lastBatch);
  });
});
