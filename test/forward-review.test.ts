import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { BrokerOptions } from "../src/broker/broker.js";
import type { SinkStatus } from "../src/broker/dispatcher.js";
import { BrokerSecurity } from "../src/broker/security.js";
import { ClosedError } from "../src/errors.js";
import { generateIdentity, toPublic, trustKey } from "../src/security/index.js";
import { ForwardTransport } from "../src/transport/forward.js";
import { createLogger, type Logger } from "../src/util/log.js";
import { createMessage } from "../src/wire/message.js";
import { startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";

// Bugs a review demonstrated in forwarding (/tmp/review-forward p3-p7), each with two real brokers.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function broker(
  opts: Partial<BrokerOptions> & { extraSinks?: ForwardTransport[] },
): Promise<TestBroker> {
  const b = await startTestBroker(opts);
  cleanups.push(() => b.stop());
  return b;
}

interface Pair {
  hub: TestBroker;
  edge: TestBroker;
  endpoint: string;
  fwd: ForwardTransport;
}

/** An edge broker forwarding to a hub over tcp (sink `to-hub`). */
async function pair(
  hub: Partial<BrokerOptions> = {},
  edge: Partial<BrokerOptions> = {},
  log?: Logger,
): Promise<Pair> {
  const [port] = await freePorts(1);
  const endpoint = `tcp://127.0.0.1:${port}`;
  const h = await broker({ name: "hub", ...hub, submitEndpoints: [endpoint] });
  const brokerName = edge.name ?? "edge";
  const fwd = new ForwardTransport({
    name: "to-hub",
    endpoint,
    brokerName,
    timeoutMs: 1000,
    ...(log ? { log } : {}),
  });
  const e = await broker({ name: brokerName, ...edge, extraSinks: [fwd] });
  return { hub: h, edge: e, endpoint, fwd };
}

function sinkOf(b: TestBroker, name = "to-hub"): SinkStatus {
  return b.broker.status().sinks.find((s) => s.name === name)!;
}

function stored(b: TestBroker): number {
  return b.broker.status().outbox.headSeq;
}

function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: "debug", write: (l) => lines.push(l) }) };
}

const small = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => ({ topic: "fwd.small", body: { n: from + i } }));

describe("forwarding: the hub's limits", () => {
  it("forwards a 6 MiB message when both brokers take 8 MiB bodies", async () => {
    const limit = { maxBodyBytes: 8 << 20 };
    const { hub, edge } = await pair(limit, limit);
    const ack = await edge.client(limit).publish("fwd.big", { blob: "x".repeat(6 << 20) });
    expect(await waitFor(() => sinkOf(edge).cursor >= ack.seq)).toBe(true);
    // Before: the sink's client assumed 1 MiB, refused it locally and the cursor moved: lost for the hub.
    expect(stored(hub)).toBe(1);
    expect(sinkOf(edge)).toMatchObject({ delivered: 1, skipped: 0 });
  });

  it("passes over what a hub with a lower limit can never take, and forwards the rest", async () => {
    const { hub, edge } = await pair({ maxBodyBytes: 64 << 10 }, { maxBodyBytes: 4 << 20 });
    const c = edge.client({ maxBodyBytes: 4 << 20 });
    // 200 KiB: the hub reads the request and refuses the body; 1.5 MiB: over the hub's socket limit,
    // which drops such a request unanswered (before: TIMEOUT retried forever, the sink stalled).
    const medium = { topic: "fwd.medium", body: { blob: "m".repeat(200 << 10) } };
    await c.publishBatch([...small(0, 5), medium, ...small(5, 5)]);
    await c.publish("fwd.big", { blob: "b".repeat(1536 << 10) });
    await c.publishBatch(small(10, 10));
    const head = stored(edge);
    expect(await waitFor(() => sinkOf(edge).cursor >= head, 20_000)).toBe(true);
    expect(sinkOf(edge)).toMatchObject({ delivered: 20, skipped: 2 });
    expect(sinkOf(edge).lastError).toMatch(/over the broker's limit|limit is 65536/);
    expect(sinkOf(edge).health.state).toBe("up");
    expect(stored(hub)).toBe(20);
  });
});

describe("forwarding: refusals the hub may lift hold the sink", () => {
  it("keeps a message refused UNKNOWN_KEY until the hub trusts the key, then forwards it", async () => {
    const app = generateIdentity("app1", tempDir("herald-fwd-keys-"));
    const trust = tempDir("herald-fwd-trust-");
    const sec = new BrokerSecurity({
      trustDir: trust,
      reloadIntervalMs: 100,
      requireSignatures: true,
      clockSkewMs: 600_000,
      policy: {},
      strictTopics: false,
      brokerName: "hub",
    });
    const { hub, edge } = await pair({ security: sec, admission: [sec.admission] });
    const ack = await edge.client({ sign: app }).publish("fwd.signed", { n: 1 });
    expect(await waitFor(() => sinkOf(edge).retries >= 2)).toBe(true);
    expect(sinkOf(edge)).toMatchObject({ cursor: 0, delivered: 0, skipped: 0 });
    expect(sinkOf(edge).health.state).toBe("down");
    expect(sinkOf(edge).lastError).toMatch(/unknown key/);
    expect(stored(hub)).toBe(0);

    trustKey(toPublic(app), trust);
    expect(await waitFor(() => stored(hub) === 1, 20_000)).toBe(true);
    expect(await waitFor(() => sinkOf(edge).cursor === ack.seq)).toBe(true);
    expect(sinkOf(edge)).toMatchObject({ delivered: 1, skipped: 0 });
  });
});

describe("forwarding: broker names", () => {
  it("refuses to forward to a hub with its own broker.name, loses nothing, logs it once", async () => {
    const { log, lines } = capture();
    const p = await pair({ name: "twin" }, { name: "twin" }, log);
    await p.edge.client().publishBatch(small(0, 5));
    expect(await waitFor(() => sinkOf(p.edge).retries >= 3, 20_000)).toBe(true);
    const s = sinkOf(p.edge);
    expect(s).toMatchObject({ cursor: 0, lag: 5, delivered: 0, skipped: 0 });
    expect(s.health.state).toBe("down");
    expect(s.lastError).toMatch(
      /broker\.name twin is the same on both brokers: give each a unique broker\.name/,
    );
    expect(p.hub.broker.status()).toMatchObject({ outbox: { headSeq: 0 }, submit: { loopsStopped: 0 } });
    expect(lines.filter((l) => l.includes("same on both brokers"))).toHaveLength(1);

    // Renamed, the hub gets everything that waited.
    await p.hub.stop();
    const renamed = await broker({ name: "hub", submitEndpoints: [p.endpoint] });
    expect(await waitFor(() => stored(renamed) === 5, 30_000)).toBe(true);
    expect(await waitFor(() => sinkOf(p.edge).cursor === 5)).toBe(true);
    expect(sinkOf(p.edge)).toMatchObject({ delivered: 5, skipped: 0 });
  });

  it("refuses to forward to its own submit endpoint", async () => {
    const [port] = await freePorts(1);
    const endpoint = `tcp://127.0.0.1:${port}`;
    const fwd = new ForwardTransport({ name: "to-self", endpoint, brokerName: "solo", timeoutMs: 1000 });
    const solo = await broker({ name: "solo", submitEndpoints: [endpoint], extraSinks: [fwd] });
    await solo.client({ endpoint }).publishBatch(small(0, 3));
    expect(await waitFor(() => sinkOf(solo, "to-self").retries >= 2)).toBe(true);
    expect(sinkOf(solo, "to-self")).toMatchObject({ cursor: 0, lag: 3, delivered: 0 });
    expect(sinkOf(solo, "to-self").lastError).toMatch(/broker\.name solo is the same on both brokers/);
    expect(solo.broker.status().submit.loopsStopped).toBe(0);
  });
});

describe("forwarding: close", () => {
  it("stays closed when a send in flight ends after close(); open() and send() then reject CLOSED", async () => {
    const [port] = await freePorts(1); // nothing listens: every try waits for its timeout
    const fwd = new ForwardTransport({
      name: "to-hub",
      endpoint: `tcp://127.0.0.1:${port}`,
      brokerName: "edge",
      timeoutMs: 10_000,
    });
    const edge = await startTestBroker({ name: "edge", extraSinks: [fwd] });
    await edge.client().publish("fwd.close", { n: 1 });
    const inFlight = fwd.send([createMessage({ topic: "fwd.close", body: { n: 2 } })]);
    const settled = inFlight.then(
      () => undefined,
      (err: unknown) => err,
    );
    await new Promise((r) => setTimeout(r, 100));
    await edge.stop(); // closes its sinks while the dispatcher's send and ours wait for the hub
    expect(await settled).toBeInstanceOf(ClosedError);
    expect(fwd.health().state).toBe("closed");
    await expect(fwd.open()).rejects.toBeInstanceOf(ClosedError);
    await expect(fwd.send([createMessage({ topic: "fwd.close", body: {} })])).rejects.toBeInstanceOf(
      ClosedError,
    );
    expect(fwd.health().state).toBe("closed");
  });
});
