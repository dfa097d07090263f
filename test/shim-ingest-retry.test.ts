import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import type { Submitter } from "../src/broker/local-submit.js";
import type { Ack } from "../src/client/publisher.js";
import { type HeraldError, rejected } from "../src/errors.js";
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

describe("shim ingest, when the broker cannot take messages now", () => {
  it("retries a failed request and retryable refusals with the same ids; drops only permanent refusals", async () => {
    const pub = new zmq.Publisher({ linger: 0 });
    await pub.bind("tcp://127.0.0.1:*");
    cleanups.push(() => pub.close());
    const broker = scriptedBroker();
    const ingest = new Ingest({ submitter: broker, brokerName: "test", log: silentLogger });
    cleanups.push(() => ingest.close());
    ingest.read("svc.test", pub.lastEndpoint!, { host: "h", app: "a" });

    // The SUB's link is up before the measured messages (ZeroMQ's slow joiner).
    const probe = createMessage({ topic: "org.test.svc.probe", body: {} });
    for (let i = 0; i < 100 && broker.calls.length === 0; i++) {
      await pub.send(encodeLegacyFrames(probe, 0));
      await waitFor(() => broker.calls.length > 0, 50);
    }
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
});
