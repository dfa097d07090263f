/**
 * relay_inbound: a bind still retrying (an old fedmsg-relay holds the port) is cancelled by unbind and by
 * a new bind; a reload asking for the same endpoint starts no second loop; an endpoint on another host is
 * left to that host's shim; messages get the app from the topic scheme; an oversized one drops its connection.
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import type { Submitter } from "../src/broker/local-submit.js";
import { Ingest, RELAY_INBOUND } from "../src/shim/ingest.js";
import { sleep } from "../src/util/backoff.js";
import type { Logger } from "../src/util/log.js";
import { pythonJson } from "../src/wire/json.js";
import type { Message } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";
import { canBind, freePorts } from "./helpers/serve.js";

const open: { close(): unknown }[] = [];
afterEach(async () => {
  for (const o of open.splice(0).reverse()) await o.close();
});

function setup(o: { maxMessageBytes?: number } = {}): { ingest: Ingest; got: Message[]; logs: string[] } {
  const logs: string[] = [];
  const log: Logger = {
    debug: () => {},
    info: (m, f) => logs.push(`info ${m} ${JSON.stringify(f)}`),
    warn: (m, f) => logs.push(`warn ${m} ${JSON.stringify(f)}`),
    error: (m, f) => logs.push(`error ${m} ${JSON.stringify(f)}`),
    child: () => log,
  };
  const got: Message[] = [];
  const submitter = {
    submit: async (ms: Message[]) => {
      got.push(...ms);
      return ms.map(() => ({ duplicate: false }));
    },
  } as unknown as Submitter;
  const ingest = new Ingest({ submitter, brokerName: "b", log, ...o });
  open.push(ingest);
  return { ingest, got, logs };
}

/** Stands in for an old fedmsg-relay still holding the port. */
async function holder(endpoint: string): Promise<zmq.Subscriber> {
  const s = new zmq.Subscriber({ linger: 0 });
  await s.bind(endpoint);
  return s;
}

/** Whether the endpoint becomes free (libzmq releases a closed socket's port asynchronously). */
async function freedWithin(endpoint: string, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50))
    if (await canBind(endpoint)) return true;
  return false;
}

/** "settled" when `p` settles within `ms` (a bounded wait, not a timing assertion). */
async function settles(p: Promise<unknown>, ms: number): Promise<string> {
  return Promise.race([p.then(() => "settled"), sleep(ms).then(() => "still running")]);
}

const endpoints = async (n: number): Promise<string[]> =>
  (await freePorts(n)).map((p) => `tcp://127.0.0.1:${p}`);

describe("relay_inbound binding", () => {
  it("unbindRelay cancels a bind still retrying: the port is never bound afterwards", async () => {
    const [a] = (await endpoints(1)) as [string];
    const { ingest } = setup();
    const held = await holder(a);
    const pending = ingest.bindRelay(a);
    await sleep(200);
    await ingest.unbindRelay();
    expect(await settles(pending, 5000)).toBe("settled");
    held.close();
    expect(await freedWithin(a, 5000)).toBe(true);
    expect(ingest.relayEndpoint).toBeUndefined();
  });

  it("a new endpoint while the old one still retries: only the new one is bound", async () => {
    const [a, b] = (await endpoints(2)) as [string, string];
    const { ingest } = setup();
    const held = await holder(a);
    const first = ingest.bindRelay(a);
    await sleep(200);
    await ingest.bindRelay(b);
    expect(ingest.relayEndpoint).toBe(b);
    expect(await settles(first, 5000)).toBe("settled");
    held.close();
    expect(await freedWithin(a, 5000)).toBe(true);
    expect(ingest.relayEndpoint).toBe(b);
  });

  it("a reload asking for the endpoint still retrying starts no second retry loop", async () => {
    const [a] = (await endpoints(1)) as [string];
    const { ingest } = setup();
    const held = await holder(a);
    const first = ingest.bindRelay(a);
    const again = ingest.bindRelay(a);
    expect(await settles(again, 1000)).toBe("settled");
    held.close();
    expect(await settles(first, 15_000)).toBe("settled");
    expect(ingest.relayEndpoint).toBe(a);
  });

  it("relay_inbound on another host is not bound nor retried, and said once", async () => {
    const { ingest, logs } = setup();
    expect(await settles(ingest.bindRelay("tcp://192.0.2.10:9941"), 2000)).toBe("settled");
    await ingest.bindRelay("tcp://192.0.2.10:9941"); // a reload: nothing new
    expect(ingest.relayEndpoint).toBeUndefined();
    expect(logs.filter((l) => l.startsWith("warn"))).toEqual([]);
    expect(logs.filter((l) => /another host/.test(l))).toHaveLength(1);
  });
});

describe("relay_inbound messages", () => {
  const envelope = (topic: string, body: Record<string, unknown>): [string, string] => [
    topic,
    pythonJson({
      i: 1,
      msg: body,
      msg_id: `2024-${randomUUID()}`,
      timestamp: 1700000000,
      topic,
      username: "root",
    }),
  ];

  async function relayWithPublisher(o: { maxMessageBytes?: number } = {}) {
    const [ep] = (await endpoints(1)) as [string];
    const s = setup(o);
    await s.ingest.bindRelay(ep, { topicPrefix: "org.fedoraproject", environment: "prod" });
    const pub = new zmq.Publisher({ linger: 0 });
    open.push(pub);
    pub.connect(ep);
    // Until the subscription reached the publisher (ZeroMQ's slow joiner).
    for (let n = 0; n < 300; n++) {
      await pub.send(envelope("org.fedoraproject.prod.probe.ping", { n }));
      if (await waitFor(() => s.got.length > 0, 100)) break;
    }
    expect(s.got.length).toBeGreaterThan(0);
    return { ...s, pub };
  }

  it("names the app after <topicPrefix>.<environment>., not the environment", async () => {
    const { pub, got } = await relayWithPublisher();
    await pub.send(envelope("org.fedoraproject.prod.logger.log", { log: "hi" }));
    await pub.send(envelope("com.other.thing.x", { other: 1 }));
    expect(await waitFor(() => got.some((m) => m.body["other"] !== undefined), 10_000)).toBe(true);
    expect(got.find((m) => m.body["log"] === "hi")?.origin).toMatchObject({ app: "logger", host: "relay" });
    expect(got.find((m) => m.body["other"] === 1)?.origin.app).toBe("thing");
  });

  it("a message over the limit ends the publisher's connection (counted); it reconnects and is read again", async () => {
    const { ingest, pub, got, logs } = await relayWithPublisher({ maxMessageBytes: 8192 });
    await pub.send(envelope("org.fedoraproject.prod.logger.log", { blob: "x".repeat(20_000) }));
    // What was in flight behind it goes with the connection: send until the reconnected peer is read.
    for (let n = 0; n < 100 && !got.some((m) => m.body["after"] === 1); n++) {
      await pub.send(envelope("org.fedoraproject.prod.logger.log", { after: 1 }));
      await waitFor(() => got.some((m) => m.body["after"] === 1), 100);
    }
    expect(got.some((m) => m.body["after"] === 1)).toBe(true);
    expect(ingest.counters(RELAY_INBOUND)).toMatchObject({ malformed: 0, disconnects: 1 });
    expect(logs.some((l) => l.startsWith("info") && /connection ended/.test(l))).toBe(true);
  });
});
