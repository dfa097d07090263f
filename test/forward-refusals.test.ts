import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { SinkStatus } from "../src/broker/dispatcher.js";
import { BrokerSecurity } from "../src/broker/security.js";
import type { HeraldClient } from "../src/client/publisher.js";
import {
  generateIdentity,
  type Identity,
  revokeKey,
  SIG_HEADER,
  signMessage,
  toPublic,
  trustKey,
} from "../src/security/index.js";
import { ForwardTransport } from "../src/transport/forward.js";
import { createLogger } from "../src/util/log.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";

// How a forward sink treats what a hub that checks signatures refuses (review /tmp/review-fwd, repro-poison
// and repro-reorder): a refusal no change at the hub cures is passed over, a curable one holds the sink.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Pair {
  hub: TestBroker;
  edge: TestBroker;
  /** The hub's submit endpoint (tcp). */
  endpoint: string;
  trust: string;
  lines: string[];
}

/**
 * An edge with no security settings forwarding to a hub that requires signatures (the review's setup).
 * The hub forgets ids after 300 ms: a resent message it already took would be stored there again.
 */
async function pair(trusted: Identity[], revoked: Identity[] = [], remindMs = 600_000): Promise<Pair> {
  const trust = tempDir("herald-fwdr-trust-");
  for (const id of [...trusted, ...revoked]) trustKey(toPublic(id), trust);
  for (const id of revoked) revokeKey(id.name, trust);
  const sec = new BrokerSecurity({
    trustDir: trust,
    reloadIntervalMs: 100,
    requireSignatures: true,
    clockSkewMs: 600_000,
    policy: {},
    strictTopics: false,
    brokerName: "hub",
  });
  const [port] = await freePorts(1);
  const endpoint = `tcp://127.0.0.1:${port}`;
  const outbox = { path: join(tempDir("herald-fwdr-hub-"), "outbox.db"), dedupWindowMs: 300 };
  const hub = await startTestBroker({
    name: "hub",
    submitEndpoints: [endpoint],
    security: sec,
    admission: [sec.admission],
    outbox: { ...outbox, retentionMs: 300, pruneIntervalMs: 100 },
  });
  cleanups.push(() => hub.stop());
  const lines: string[] = [];
  const log = createLogger({ level: "debug", write: (l) => lines.push(l) });
  const fwd = new ForwardTransport({
    name: "to-hub",
    endpoint,
    brokerName: "edge",
    timeoutMs: 1000,
    log,
    remindMs,
  });
  const edge = await startTestBroker({ name: "edge", extraSinks: [fwd] });
  cleanups.push(() => edge.stop());
  return { hub, edge, endpoint, trust, lines };
}

const sinkOf = (b: TestBroker): SinkStatus => b.broker.status().sinks.find((s) => s.name === "to-hub")!;
const stored = (b: TestBroker): number => b.broker.status().outbox.headSeq;

function signed(id: Identity, n: number): Message {
  return signMessage(createMessage({ topic: "fwd.refusals", body: { n } }), id);
}

/** Signed, then its signature replaced: no key ever verifies it. */
function forged(id: Identity, n: number): Message {
  const m = signed(id, n);
  return { ...m, headers: { ...m.headers, [SIG_HEADER]: Buffer.alloc(64, 7).toString("base64") } };
}

async function submitAll(client: HeraldClient, messages: Message[]): Promise<void> {
  for (const r of await client.submit(messages)) if (r instanceof Error) throw r;
}

/** The hub's seq for each id (its `herald trace`). */
async function hubSeqs(p: Pair, ids: string[]): Promise<number[]> {
  const c = p.hub.client({ endpoint: p.endpoint });
  return Promise.all(ids.map(async (id) => (await c.trace(id)).seq ?? -1));
}

describe("forwarding: refusals no change at the hub cures are passed over", () => {
  it("passes over BAD_SIGNATURE and REVOKED_KEY messages and forwards the ones after them", async () => {
    const keys = tempDir("herald-fwdr-keys-");
    const app = generateIdentity("app", keys);
    const old = generateIdentity("old", keys);
    const p = await pair([app], [old]);
    const bad = forged(app, 3);
    const revoked = signed(old, 6);
    const messages = [signed(app, 1), signed(app, 2), bad, signed(app, 4), signed(app, 5), revoked];
    messages.push(...[7, 8, 9].map((n) => signed(app, n)));
    await submitAll(p.edge.client(), messages);

    // Before: held and retried for ever; the cursor stayed at the forged message and the outbox filled.
    expect(await waitFor(() => sinkOf(p.edge).cursor === 9, 20_000)).toBe(true);
    expect(sinkOf(p.edge)).toMatchObject({ skipped: 2, lag: 0 });
    expect(sinkOf(p.edge).health.state).toBe("up");
    expect(stored(p.hub)).toBe(7);
    const trace = await p.edge.client().trace(bad.id);
    const at = trace.sinks.find((s) => s.name === "to-hub");
    expect(at).toMatchObject({ state: "passed-over" });
    expect(at?.detail).toMatch(/^BAD_SIGNATURE: the broker at tcp:\/\/.* refused message .* does not match/);
    const revokedAt = (await p.edge.client().trace(revoked.id)).sinks.find((s) => s.name === "to-hub");
    expect(revokedAt?.detail).toMatch(/^REVOKED_KEY: .*revoked key/);
  });
});

describe("forwarding: a refusal the hub may lift holds the sink", () => {
  it("holds an UNKNOWN_KEY message, names it, reminds, stores the others once; forwards it once trusted", async () => {
    const keys = tempDir("herald-fwdr-keys-");
    const app = generateIdentity("app", keys);
    const later = generateIdentity("later", keys);
    const p = await pair([app], [], 500);
    const held = signed(later, 3);
    const after = [4, 5, 6].map((n) => signed(app, n));
    await submitAll(p.edge.client(), [signed(app, 1), signed(app, 2), held, ...after]);

    // Several retries, each past the hub's 300 ms dedup window: the later ones are still stored once.
    expect(await waitFor(() => sinkOf(p.edge).retries >= 5, 20_000)).toBe(true);
    await new Promise((r) => setTimeout(r, 700));
    expect(stored(p.hub)).toBe(5);
    const s = sinkOf(p.edge);
    expect(s).toMatchObject({ skipped: 0 });
    expect(s.cursor).toBeLessThan(3);
    expect(s.health.state).toBe("down");
    expect(s.lastError).toContain(`refused message ${held.id}: message ${held.id} is signed by unknown key`);
    expect(s.lastError).toContain("herald serve --forget-sink to-hub");
    const reminders = () => p.lines.filter((l) => l.includes("still holds its messages"));
    expect(await waitFor(() => reminders().length > 0, 20_000)).toBe(true);
    expect(reminders()[0]).toContain(`id=${held.id}`);
    expect(reminders()[0]).toContain("once outbox.maxMessages are pending it refuses every submission");
    // Said once, then only every remindMs: not on every retry.
    expect(p.lines.filter((l) => l.includes("forward sink holds its messages"))).toHaveLength(1);
    expect(reminders().length).toBeLessThan(sinkOf(p.edge).retries);

    trustKey(toPublic(later), p.trust);
    expect(await waitFor(() => sinkOf(p.edge).cursor === 6, 20_000)).toBe(true);
    expect(sinkOf(p.edge)).toMatchObject({ skipped: 0, lag: 0 });
    expect(stored(p.hub)).toBe(6);
    // What docs/configuration.md says: the held one arrives after those that followed it.
    const [heldSeq, ...afterSeqs] = await hubSeqs(p, [held.id, ...after.map((m) => m.id)]);
    expect(heldSeq).toBe(6);
    expect(Math.max(...afterSeqs)).toBeLessThan(6);
  });
});
