/**
 * The shim's legacy ingest from services' ports: what a publisher of large envelopes makes it hold is
 * bounded in bytes (the queue for the broker, each submit, libzmq's queue per connection: the envelope
 * limit as its per-frame cap and a few messages), the excess is dropped and counted while smaller
 * messages of other publishers still get in; the reader yields after each message; malformed messages
 * are all counted but said at most 20 times a minute; a broker that has not started yet is no warning.
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import type { Submitter } from "../src/broker/local-submit.js";
import type { Ack } from "../src/client/publisher.js";
import { type HeraldError, rejected } from "../src/errors.js";
import { Ingest, type IngestOptions, LEGACY_RECEIVE_HWM } from "../src/shim/ingest.js";
import { READ_YIELD_BYTES } from "../src/shim/relay.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { pythonJson } from "../src/wire/json.js";
import type { Message } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";
import { type LogLine, memoryLogger } from "./helpers/log.js";
import { turnTracker } from "./helpers/turns.js";

const TOPIC = "org.fedoraproject.prod.bodhi.update.comment";
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function envelope(body: Record<string, unknown>): [string, Buffer] {
  const env = { i: 1, msg: body, msg_id: `2024-${randomUUID()}`, timestamp: 1700000000, topic: TOPIC };
  return [TOPIC, Buffer.from(pythonJson({ ...env, username: "apache" }))];
}

/** A broker stand-in that takes everything, each call after `delayMs`, and records the batches. */
function slowBroker(delayMs: number): Submitter & { got: Message[]; batches: number[] } {
  const b = {
    got: [] as Message[],
    batches: [] as number[],
    async submit(ms: readonly Message[]): Promise<Array<Ack | HeraldError>> {
      await new Promise((r) => setTimeout(r, delayMs));
      b.batches.push(ms.length);
      b.got.push(...ms);
      return ms.map((m) => ({ id: m.id, seq: 1, acceptedAt: "", duplicate: false }));
    },
  };
  return b;
}

async function publisherOn(): Promise<{ pub: zmq.Publisher; endpoint: string }> {
  const pub = new zmq.Publisher({ linger: 0 });
  await pub.bind("tcp://127.0.0.1:*");
  cleanups.push(() => pub.close());
  return { pub, endpoint: pub.lastEndpoint! };
}

function ingestWith(o: Partial<IngestOptions> & Pick<IngestOptions, "submitter">): Ingest {
  const ingest = new Ingest({ brokerName: "b", log: memoryLogger([]), ...o });
  cleanups.push(() => ingest.close());
  return ingest;
}

/** Probe until the ingest reads `pub` (ZeroMQ's slow joiner). */
async function link(pub: zmq.Publisher, got: () => Message[]): Promise<void> {
  for (let n = 0; n < 300; n++) {
    const probe = randomUUID();
    await pub.send(envelope({ probe }));
    if (await waitFor(() => got().some((m) => m.body["probe"] === probe), 100)) return;
  }
  throw new Error("the ingest never read the publisher");
}

describe("legacy ingest from a service's port: memory", () => {
  it("libzmq refuses a frame over the envelope limit, and the reader yields every MiB", async () => {
    const { endpoint } = await publisherOn();
    const ingest = ingestWith({ submitter: slowBroker(0), maxMessageBytes: 65_536 });
    ingest.read("bodhi.app01", endpoint, {});
    // White box: the ingest's SUB socket as libzmq has it (no public handle on it).
    const reader = (ingest as unknown as { readers: Map<string, { sub: unknown; t: unknown }> }).readers.get(
      endpoint,
    )!;
    const socket = (reader.sub as { sockets: zmq.Subscriber[] }).sockets[0]!;
    expect({ max: socket.maxMessageSize, hwm: socket.receiveHighWaterMark }).toEqual({
      max: 65_536,
      hwm: LEGACY_RECEIVE_HWM,
    });
    expect((reader.t as { opts: { yieldEveryBytes?: number } }).opts.yieldEveryBytes).toBe(READ_YIELD_BYTES);
    expect(READ_YIELD_BYTES).toBeLessThanOrEqual(1 << 20);
  });

  it("a flood of large envelopes past a slow broker: the queue stays within its byte bound, the rest is dropped and counted, small messages of another publisher all get in", async () => {
    const big = await publisherOn();
    const small = await publisherOn();
    const broker = slowBroker(20);
    const bound = 1 << 20;
    const ingest = ingestWith({ submitter: broker, maxMessageBytes: 256 << 10, maxQueuedBytes: bound });
    ingest.read("big.svc", big.endpoint, {});
    ingest.read("small.svc", small.endpoint, {});
    await link(big.pub, () => broker.got);
    await link(small.pub, () => broker.got);
    const before = { big: ingest.counters("big.svc").ingested, small: ingest.counters("small.svc").ingested };

    const blob = "x".repeat(100_000);
    const flood = (async () => {
      for (let k = 0; k < 300; k++) await big.pub.send(envelope({ k, blob }));
    })();
    for (let j = 0; j < 100; j++) {
      await small.pub.send(envelope({ j }));
      await new Promise((r) => setTimeout(r, 5));
    }
    await flood;
    const bigC = ingest.counters("big.svc");
    const smallC = ingest.counters("small.svc");
    // Every envelope sent reached the shim (300 < the PUB's own high-water mark): taken or dropped, counted.
    expect(await waitFor(() => bigC.ingested - before.big + bigC.dropped === 300, 30_000)).toBe(true);
    expect(await waitFor(() => smallC.ingested - before.small === 100, 10_000)).toBe(true);
    expect(bigC.dropped).toBeGreaterThan(0);
    expect(smallC.dropped).toBe(0);
    expect(ingest.queueState().peakBytes).toBeLessThanOrEqual(bound);
    expect(ingest.queueState().peakBytes).toBeGreaterThan(bound / 2);
    expect(await waitFor(() => ingest.queueState().bytes === 0)).toBe(true);
  });

  it("each submit is bounded in bytes, whatever the count (at least one message)", async () => {
    const { pub, endpoint } = await publisherOn();
    const broker = slowBroker(50);
    const ingest = ingestWith({ submitter: broker, maxMessageBytes: 256 << 10, maxBatchBytes: 250_000 });
    ingest.read("bodhi.app01", endpoint, {});
    await link(pub, () => broker.got);
    const blob = "x".repeat(100_000);
    for (let k = 0; k < 20; k++) await pub.send(envelope({ k, blob }));
    expect(await waitFor(() => broker.got.filter((m) => m.body["k"] !== undefined).length === 20)).toBe(true);
    // Two envelopes of ~100 KB fit in 250,000 bytes, three do not; the slow broker let them pile up.
    expect(Math.max(...broker.batches)).toBe(2);
  });
});

describe("ZmqSubscribeTransport with yieldEveryBytes", () => {
  /** Messages read per event-loop turn for a burst of 500 small envelopes, at the most. */
  async function mostPerTurn(yieldEveryBytes: number): Promise<number> {
    const { pub, endpoint } = await publisherOn();
    const t = new ZmqSubscribeTransport({
      name: "t",
      endpoints: [endpoint],
      format: "legacy",
      yieldEveryBytes,
    });
    const sub = t.receive({ patterns: ["#"] });
    cleanups.push(() => t.close());
    const turns = turnTracker();
    const got: Message[] = [];
    void (async () => {
      for await (const d of sub) {
        got.push(d.message);
        turns.mark();
      }
    })();
    await link(pub, () => got);
    turns.reset();
    for (let k = 0; k < 500; k++) await pub.send(envelope({ k }));
    expect(await waitFor(() => turns.marked >= 500, 20_000)).toBe(true);
    return turns.stop();
  }

  it("returns to the event loop once the bytes read reach the bound, so a burst of large ones is not read in one turn", async () => {
    expect(await mostPerTurn(1)).toBeLessThanOrEqual(2);
  });

  it("reads small messages many to a turn (the shim's ingest batches them; a yield per message cut it to a sixth)", async () => {
    expect(await mostPerTurn(1 << 20)).toBeGreaterThan(10);
  });
});

describe("legacy ingest from a service's port: what it says", () => {
  it("counts every malformed message and says at most 20 a minute per service", async () => {
    const { pub, endpoint } = await publisherOn();
    const broker = slowBroker(0);
    const lines: LogLine[] = [];
    const ingest = ingestWith({ submitter: broker, log: memoryLogger(lines) });
    ingest.read("bodhi.app01", endpoint, {});
    await link(pub, () => broker.got);
    for (let i = 0; i < 60; i++) await pub.send([TOPIC, `not json ${i}`]);
    expect(await waitFor(() => ingest.counters("bodhi.app01").malformed === 60)).toBe(true);
    expect(lines.filter((l) => l.level === "warn" && /malformed/.test(l.msg))).toHaveLength(20);
  });

  it("a broker that has not started yet (NO_BROKER) is said at debug; once it answered, at warn", async () => {
    const { pub, endpoint } = await publisherOn();
    const lines: LogLine[] = [];
    let up = false;
    let down = false;
    const got: Message[] = [];
    const submitter: Submitter = {
      async submit(ms) {
        if (!up || down)
          throw rejected(
            "NO_BROKER",
            "the broker in this process has not started yet: retry with the same ids",
          );
        got.push(...ms);
        return ms.map((m) => ({ id: m.id, seq: 1, acceptedAt: "", duplicate: false }));
      },
    };
    const ingest = ingestWith({ submitter, log: memoryLogger(lines) });
    ingest.read("bodhi.app01", endpoint, {});
    const said = (level: string) =>
      lines.filter((l) => l.level === level && /cannot submit/.test(l.msg)).length;
    // Read while the broker is not there: retried, said at debug only.
    for (let n = 0; n < 300 && said("debug") === 0; n++) {
      await pub.send(envelope({ early: n }));
      await waitFor(() => said("debug") > 0, 100);
    }
    expect(said("debug")).toBeGreaterThan(0);
    expect(said("warn")).toBe(0);
    up = true;
    expect(await waitFor(() => got.some((m) => m.body["early"] !== undefined), 10_000)).toBe(true);
    // Once it answered, a broker gone is news.
    down = true;
    await pub.send(envelope({ late: 1 }));
    expect(await waitFor(() => said("warn") > 0, 5_000)).toBe(true);
  });
});
