/**
 * The legacy boundary (security review t5): an anonymous relay_inbound peer sends a fedmsg message whose
 * msg_id "YEAR-<uuidv7>" maps to the id of a stored herald message. Before, the broker answered
 * "duplicate" and the shim counted it as one: nothing said an id had been claimed. Now it is refused
 * ID_CONFLICT, counted as rejected and logged; the same legacy message read on two paths stays a duplicate.
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { Ingest, RELAY_INBOUND } from "../src/shim/ingest.js";
import type { Logger } from "../src/util/log.js";
import { pythonJson } from "../src/wire/json.js";
import type { Message } from "../src/wire/message.js";
import { collectMessages, linkUp, startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SCHEME = { topicPrefix: "org.fedoraproject", environment: "prod" };

function fedmsg(topic: string, msg: Record<string, unknown>, msgId: string): [string, string] {
  return [topic, pythonJson({ i: 1, msg, msg_id: msgId, timestamp: 1700000000, topic, username: "apache" })];
}

/** A broker, a subscriber on its herald PUB (link up), and a shim Ingest submitting to it as `herald shim` does. */
async function setup(): Promise<{ b: TestBroker; ingest: Ingest; got: Message[]; warnings: string[] }> {
  const b = await startTestBroker();
  cleanups.push(() => b.stop());
  const got = collectMessages(b.subscriber(["herald"]));
  const seen: string[] = [];
  const watch = setInterval(() => seen.splice(0, seen.length, ...got.map((m) => m.id)), 10);
  cleanups.push(() => clearInterval(watch));
  await linkUp(b.client(), [seen]);
  const warnings: string[] = [];
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (m, f) => warnings.push(`${m} ${JSON.stringify(f)}`),
    error: (m, f) => warnings.push(`${m} ${JSON.stringify(f)}`),
    child: () => log,
  };
  const ingest = new Ingest({ submitter: b.client(), brokerName: "test", log });
  cleanups.push(() => ingest.close());
  return { b, ingest, got, warnings };
}

/** A publisher on `send`'s link, sending probes until the shim ingested one (ZeroMQ's slow joiner). */
async function untilIngested(ingest: Ingest, service: string, send: (f: [string, string]) => Promise<void>) {
  for (let n = 0; n < 300; n++) {
    await send(fedmsg("org.fedoraproject.prod.probe.ping", { n }, `2026-${randomUUID()}`));
    if (await waitFor(() => ingest.counters(service).ingested > 0, 100)) return;
  }
  throw new Error(`${service}: the shim never read the probes`);
}

async function relayPublisher(ingest: Ingest): Promise<zmq.Publisher> {
  const [port] = await freePorts(1);
  const endpoint = `tcp://127.0.0.1:${port}`;
  await ingest.bindRelay(endpoint, SCHEME);
  const pub = new zmq.Publisher({ linger: 0 });
  cleanups.push(() => pub.close());
  pub.connect(endpoint);
  await untilIngested(ingest, RELAY_INBOUND, (f) => pub.send(f));
  return pub;
}

describe("shim: a legacy message claiming a stored herald id", () => {
  it("is refused ID_CONFLICT, counted as rejected and logged; subscribers keep the genuine message", async () => {
    const { b, ingest, got, warnings } = await setup();
    const pub = await relayPublisher(ingest);
    const relay = ingest.counters(RELAY_INBOUND);
    const before = { ...relay };
    const genuine = await b
      .client()
      .publish("org.fedoraproject.prod.bodhi.update.request", { update: "REAL-1" });
    const year = new Date().getUTCFullYear();
    await pub.send(
      fedmsg("org.fedoraproject.prod.bodhi.update.request", { update: "FAKE-1" }, `${year}-${genuine.id}`),
    );
    expect(await waitFor(() => relay.rejected > before.rejected, 10_000)).toBe(true);
    expect(relay).toMatchObject({ rejected: before.rejected + 1, duplicates: before.duplicates });
    expect(
      warnings.some((w) => /broker refused an ingested legacy message/.test(w) && /ID_CONFLICT/.test(w)),
    ).toBe(true);
    // The shim goes on: the next relay message is ingested.
    await pub.send(fedmsg("org.fedoraproject.prod.logger.log", { log: "after" }, `2026-${randomUUID()}`));
    expect(await waitFor(() => got.some((m) => m.body["log"] === "after"), 10_000)).toBe(true);
    expect(got.filter((m) => m.id === genuine.id).map((m) => m.body)).toEqual([{ update: "REAL-1" }]);
  });

  it("the same fedmsg message read from a service port and from relay_inbound is one message", async () => {
    const { ingest, got } = await setup();
    const relayPub = await relayPublisher(ingest);
    const [port] = await freePorts(1);
    const endpoint = `tcp://127.0.0.1:${port}`;
    const svcPub = new zmq.Publisher({ linger: 0 });
    cleanups.push(() => svcPub.close());
    await svcPub.bind(endpoint);
    ingest.read("bodhi.app01", endpoint, { host: "app01", app: "bodhi" });
    await untilIngested(ingest, "bodhi.app01", (f) => svcPub.send(f));
    const counts = () => [RELAY_INBOUND, "bodhi.app01"].map((s) => ({ ...ingest.counters(s) }));
    const [r0, s0] = counts();
    const frames = fedmsg("org.fedoraproject.prod.bodhi.update.comment", { c: 1 }, `2026-${randomUUID()}`);
    await svcPub.send(frames);
    await relayPub.send(frames);
    const id = JSON.parse(frames[1]).msg_id as string;
    const settled = () => {
      const [r, s] = counts();
      return r!.ingested + r!.duplicates + r!.rejected + s!.ingested + s!.duplicates + s!.rejected;
    };
    const base = r0!.ingested + r0!.duplicates + r0!.rejected + s0!.ingested + s0!.duplicates + s0!.rejected;
    expect(await waitFor(() => settled() === base + 2, 10_000)).toBe(true);
    const [r, s] = counts();
    // origin (app01/bodhi vs relay/bodhi) and herald.ingested-from differ: still the same message.
    expect(r!.rejected + s!.rejected).toBe(r0!.rejected + s0!.rejected);
    expect(r!.duplicates + s!.duplicates).toBe(r0!.duplicates + s0!.duplicates + 1);
    expect(await waitFor(() => got.some((m) => m.id === id), 10_000)).toBe(true);
    expect(got.filter((m) => m.id === id)).toHaveLength(1);
  });
});
