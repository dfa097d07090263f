import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { Broker } from "../src/broker/broker.js";
import { type MessageTrace, traceIdArg, traceReply } from "../src/broker/commands.js";
import type { SinkStanding } from "../src/broker/dispatcher.js";
import { type RunningBroker, startBroker } from "../src/cli/serve.js";
import { render } from "../src/cli/trace.js";
import { HeraldClient } from "../src/client/publisher.js";
import { loadConfig } from "../src/config/load.js";
import { HeraldError, MessageRejectedError, TransportError } from "../src/errors.js";
import { initialHealth, type Subscription, type Transport } from "../src/transport/types.js";
import { silentLogger } from "../src/util/log.js";
import type { Message } from "../src/wire/message.js";
import { startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { CLI, freePorts } from "./helpers/serve.js";
import { configYaml, endpointsOn, startShimBroker } from "./shim-helpers.js";

// `herald trace ID`: where did a message go? The broker answers from its outbox (stored or not) and
// from each sink's dispatcher (taken, in flight, not reached, held, passed over, added after it).

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A sink whose sends wait until released, and which can never carry topics ending in `.huge`. */
class GatedSink implements Transport {
  readonly kind = "memory";
  private readonly health_ = initialHealth();
  private release: (() => void) | undefined;
  private gate: Promise<void> | undefined;
  readonly sent: string[] = [];
  constructor(readonly name: string) {}
  async open(): Promise<void> {
    this.health_.state = "up";
  }
  hold(): void {
    this.gate = new Promise((r) => {
      this.release = r;
    });
  }
  open_(): void {
    this.release?.();
    this.gate = undefined;
  }
  /** Every send fails (retryable), as a sink whose peer is down. */
  fail = false;
  async send(batch: readonly Message[]): Promise<void> {
    if (this.fail) throw new TransportError("TRANSPORT", "the peer is down", { retryable: true });
    if (batch.some((m) => m.topic.endsWith(".huge"))) {
      throw new MessageRejectedError("TOO_LARGE", "this sink takes nothing ending in .huge");
    }
    this.sent.push(...batch.map((m) => m.id)); // taken, confirmed once the gate opens
    await this.gate;
  }
  receive(): Subscription {
    throw new HeraldError("UNSUPPORTED", "send only");
  }
  health() {
    return structuredClone(this.health_);
  }
  async close(): Promise<void> {
    this.open_();
  }
}

async function broker(extra: Transport[] = []): Promise<TestBroker> {
  const tb = await startTestBroker({ extraSinks: extra });
  cleanups.push(() => tb.stop());
  return tb;
}

/** Poll an async condition (a trace over the socket) until it holds; false at the deadline. */
async function until(cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

const byName = (t: MessageTrace, name: string) => t.sinks.find((s) => s.name === name);

describe("trace over the submit socket", () => {
  it("says where a stored message went: published on both PUB sockets, in flight or waiting on a gated sink", async () => {
    const gated = new GatedSink("gated");
    const tb = await broker([gated]);
    const client = tb.client();
    const first = await client.publish("org.test.trace.one", { n: 1 });
    expect(await waitFor(() => gated.sent.length === 1)).toBe(true);
    gated.hold(); // the next page stays in flight; the one after it waits behind it
    const second = await client.publish("org.test.trace.two", { n: 2 });
    expect(await waitFor(() => gated.sent.length === 2)).toBe(true);
    const third = await client.publish("org.test.trace.three", { n: 3 });

    const t1 = await client.trace(first.id);
    expect(t1).toMatchObject({ found: true, broker: "test", seq: 1, topic: "org.test.trace.one" });
    expect(new Date(t1.acceptedAt!).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(t1.sinks.map((s) => s.name)).toEqual(["herald", "legacy", "gated"]);
    expect(t1.sinks.every((s) => s.state === "done")).toBe(true);

    expect(await until(async () => byName(await client.trace(second.id), "herald")?.state === "done")).toBe(
      true,
    );
    const t2 = await client.trace(second.id);
    expect(byName(t2, "gated")).toMatchObject({ state: "sending", cursor: 1 });
    const t3 = await client.trace(third.id);
    expect(byName(t3, "gated")).toMatchObject({ state: "waiting", ahead: 1, cursor: 1 });

    gated.open_();
    expect(await until(async () => byName(await client.trace(third.id), "gated")?.state === "done")).toBe(
      true,
    );
  });

  it("names the reason a sink passed a message over, while the other sinks carried it", async () => {
    const gated = new GatedSink("gated");
    const tb = await broker([gated]);
    const client = tb.client();
    const huge = await client.publish("org.test.trace.huge", { n: 1 });
    const after = await client.publish("org.test.trace.fine", { n: 2 });
    expect(await until(async () => byName(await client.trace(after.id), "gated")?.state === "done")).toBe(
      true,
    );
    const t = await client.trace(huge.id);
    expect(byName(t, "gated")).toMatchObject({ state: "passed-over" });
    expect(byName(t, "gated")?.detail).toMatch(/TOO_LARGE: this sink takes nothing ending in \.huge/);
    expect(byName(t, "herald")?.state).toBe("done");
  });

  it("says a message is not stored, with the oldest message the outbox still holds", async () => {
    const tb = await broker();
    const client = tb.client();
    await client.publish("org.test.trace.one", {});
    const t = await client.trace("no-such-id");
    expect(t).toMatchObject({ found: false, id: "no-such-id", oldestSeq: 1, sinks: [] });
    expect(t.keptForMs).toBeGreaterThan(0);
  });

  it("refuses a trace without a usable id (BAD_REQUEST), and the broker goes on", async () => {
    const tb = await broker();
    const client = tb.client();
    for (const args of [{}, { id: 5 }, { id: "" }, { id: "x".repeat(257) }])
      await expect(client.command("trace", args)).rejects.toMatchObject({ code: "BAD_REQUEST" });
    expect((await client.publish("org.test.after", {})).seq).toBe(1);
  });

  it("marks a sink added after a message as not-for-sink, across a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-trace-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const submit = `ipc://${join(dir, "submit.sock")}`;
    const start = async (sinks: Transport[]) => {
      const b = new Broker({
        name: "t",
        submitEndpoints: [submit],
        outbox: { path: join(dir, "outbox.db") },
        sinks,
        maxBodyBytes: 1 << 20,
        maxBatch: 1000,
      });
      await b.start();
      return b;
    };
    const a = new GatedSink("a");
    let b1 = await start([a]);
    const client = new HeraldClient({ endpoint: submit, timeoutMs: 2000, retries: 2 });
    cleanups.push(() => client.close());
    const old = await client.publish("org.test.old", {});
    expect(await waitFor(() => a.sent.length === 1)).toBe(true);
    await b1.stop();
    const late = new GatedSink("late");
    b1 = await start([new GatedSink("a"), late]);
    cleanups.push(() => b1.stop());
    const t = await client.trace(old.id);
    expect(byName(t, "a")?.state).toBe("done");
    expect(byName(t, "late")).toMatchObject({ state: "not-for-sink" });
    expect(byName(t, "late")?.detail).toMatch(/added after this message \(at seq 1\)/);
    const fresh = await client.publish("org.test.new", {});
    expect(await until(async () => byName(await client.trace(fresh.id), "late")?.state === "done")).toBe(
      true,
    );
  });
});

describe("a broker not running", () => {
  it("answers status and trace with a clear error, not a TypeError", () => {
    const b = new Broker({
      name: "idle",
      submitEndpoints: [],
      outbox: { path: join(tmpdir(), "never-opened.db") },
      sinks: [],
      maxBodyBytes: 1 << 20,
      maxBatch: 1000,
    });
    expect(() => b.status()).toThrow(/the broker is not running: call start\(\) first/);
    expect(() => b.trace("x")).toThrow(expect.objectContaining({ code: "NO_BROKER" }));
  });
});

describe("trace across restarts and failures", () => {
  it("still names a passed-over message after a restart (not done)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-trace-po-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const submit = `ipc://${join(dir, "submit.sock")}`;
    const start = async (sink: Transport) => {
      const b = new Broker({
        name: "t",
        submitEndpoints: [submit],
        outbox: { path: join(dir, "outbox.db") },
        sinks: [sink],
        maxBodyBytes: 1 << 20,
        maxBatch: 1000,
      });
      await b.start();
      return b;
    };
    let b = await start(new GatedSink("picky"));
    const client = new HeraldClient({ endpoint: submit, timeoutMs: 2000, retries: 2 });
    cleanups.push(() => client.close());
    const huge = await client.publish("org.test.po.huge", {});
    const fine = await client.publish("org.test.po.fine", {});
    expect(await until(async () => byName(await client.trace(fine.id), "picky")?.state === "done")).toBe(
      true,
    );
    expect(byName(await client.trace(huge.id), "picky")?.state).toBe("passed-over");
    await b.stop();
    b = await start(new GatedSink("picky"));
    cleanups.push(() => b.stop());
    const after = byName(await client.trace(huge.id), "picky");
    expect(after).toMatchObject({ state: "passed-over" });
    expect(after?.detail).toMatch(/TOO_LARGE/);
  });

  it("does not say sending while a failed page waits for its retry", async () => {
    const failing = new GatedSink("flaky");
    failing.fail = true;
    const tb = await broker([failing]);
    const client = tb.client();
    const msg = await client.publish("org.test.flaky", {});
    expect(
      await until(async () => (tb.broker.status().sinks.find((k) => k.name === "flaky")?.retries ?? 0) > 0),
    ).toBe(true);
    expect(byName(await client.trace(msg.id), "flaky")).toMatchObject({ state: "waiting", ahead: 0 });
  });
});

describe("trace with the in-broker shim", () => {
  it("says the shim holds a message for a bridged service whose old port is still taken", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-trace-shim-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [herald, legacy, pb] = await freePorts(3);
    const [beta] = endpointsOn([pb!]) as [string];
    const file = join(dir, "herald.yaml");
    const services = { "beta.test": { stage: "bridged" as const, endpoints: [beta] } };
    writeFileSync(file, configYaml(dir, { herald: herald!, legacy: legacy! }, { services }));
    const oldBeta = new zmq.Publisher({ linger: 0 }); // the old app still holds its port
    await oldBeta.bind(beta);
    cleanups.push(() => oldBeta.close());
    const config = loadConfig({ configPath: file, env: {} }).config;
    const running: RunningBroker = await startBroker(config, silentLogger, undefined, { settleMs: 300 });
    cleanups.push(() => running.stop());
    const client = new HeraldClient({
      endpoint: `ipc://${join(dir, "run", "submit.sock")}`,
      timeoutMs: 5000,
    });
    cleanups.push(() => client.close());
    const betaMsg = await client.publish("org.example.dev.beta.built", { n: 1 });
    const other = await client.publish("org.example.dev.gamma.built", { n: 2 });
    const shim = async (id: string) => byName(await client.trace(id), "legacy-shim");
    expect(await until(async () => (await shim(other.id))?.state === "done")).toBe(true);
    expect(await shim(betaMsg.id)).toMatchObject({ state: "held", kind: "shim" });
    expect((await shim(betaMsg.id))?.detail).toMatch(/held for beta\.test: its legacy port is not bound yet/);
  }, 30_000);

  it("says the shim dropped a held message when its service went back to legacy before the port was bound", async () => {
    const [pb] = await freePorts(1);
    const [beta] = endpointsOn([pb!]) as [string];
    const oldBeta = new zmq.Publisher({ linger: 0 });
    await oldBeta.bind(beta);
    cleanups.push(() => oldBeta.close());
    const setup = await startShimBroker({
      services: { "beta.test": { stage: "bridged", endpoints: [beta] } },
    });
    cleanups.push(() => setup.stop());
    const msg = await setup.client.publish("org.example.dev.beta.built", { n: 1 });
    const shim = async () => byName(await setup.client.trace(msg.id), "legacy-shim");
    expect(await until(async () => (await shim())?.state === "held")).toBe(true);
    await setup.setStages({ "beta.test": "legacy" });
    expect(await shim()).toMatchObject({ state: "passed-over" });
    expect((await shim())?.detail).toMatch(/beta\.test: dropped: the service moved to stage legacy/);
  }, 30_000);
});

describe("trace's answer, from the standings", () => {
  const standing = (over: Partial<SinkStanding> = {}): SinkStanding => ({
    name: "s",
    kind: "zeromq",
    cursor: 10,
    sentThrough: 10,
    health: { ...initialHealth(), state: "up" },
    ...over,
  });
  const stored = (seq: number) => ({
    stored: {
      seq,
      acceptedAt: 0,
      bytes: 10,
      message: {
        id: "m",
        topic: "t.x",
        sentAt: "2026-01-01T00:00:00.000Z",
        schema: "base.message",
        schemaVersion: 1,
        headers: {},
        body: {},
        origin: { host: "h", app: "a", pid: 1 },
        via: ["b1"],
      },
    },
    oldest: { seq: 1, acceptedAt: 0 },
    keptForMs: 1000,
    joined: { late: 20 },
  });
  const one = (seq: number, s: SinkStanding) => traceReply("b", "m", stored(seq), () => [s]).sinks[0];

  it("orders the states: passed over, then not for the sink, then held, then by the cursor", () => {
    expect(one(5, standing({ passedOver: "TOO_LARGE: x" }))?.state).toBe("passed-over");
    expect(one(20, standing({ name: "late", cursor: 30, sentThrough: 30 }))?.state).toBe("not-for-sink");
    expect(one(21, standing({ name: "late", cursor: 30, sentThrough: 30 }))?.state).toBe("done");
    expect(one(8, standing({ held: { state: "held", detail: "held for bodhi" } }))).toMatchObject({
      state: "held",
      detail: /bodhi/,
    });
    expect(one(10, standing())?.state).toBe("done");
    expect(one(12, standing({ sentThrough: 12 }))?.state).toBe("sending");
    expect(one(14, standing({ sentThrough: 12 }))).toMatchObject({ state: "waiting", ahead: 3 });
    expect(traceReply("b", "m", stored(3), () => []).via).toEqual(["b1"]);
    // done, but RabbitMQ returned some of this sink's messages unroutable: the answer says it may be one
    const amqp = standing({
      name: "late",
      kind: "amqp",
      cursor: 30,
      sentThrough: 30,
      health: { ...initialHealth(), counters: { returned: 2 } },
    });
    expect(one(25, amqp)).toMatchObject({ state: "done", detail: /RabbitMQ returned 2 message/ });
    // a sink without a registration record (registered by an older herald): done, with the caveat
    expect(one(10, standing())).toMatchObject({ state: "done", detail: /registered before herald recorded/ });
    // ...and the text form says it too, not only --json: "confirmed" alone reads as delivered
    const text = render(traceReply("b", "m", stored(25), () => [amqp]));
    expect(text).toMatch(/late \(amqp\): confirmed by RabbitMQ; but RabbitMQ returned 2 message/);
  });

  it("checks the id argument", () => {
    expect(traceIdArg({ id: "abc" })).toBe("abc");
    expect(() => traceIdArg({ id: ["abc"] })).toThrow(/trace needs/);
  });
});

const run = promisify(execFile);
async function herald(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, HERALD_CONFIG: "" } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("herald trace (CLI, dist/)", () => {
  it("prints where a message went; exit 1 for an id the broker does not have, 2 without an id, 4 without a broker", async () => {
    const tb = await broker();
    const client = tb.client();
    const ack = await client.publish("org.test.cli.trace", { n: 1 });
    expect(await until(async () => (await client.trace(ack.id)).sinks.every((s) => s.state === "done"))).toBe(
      true,
    );
    const found = await herald(["trace", ack.id, "--endpoint", tb.submit]);
    expect(found.code, found.stderr).toBe(0);
    expect(found.stdout).toMatch(new RegExp(`^${ack.id}: stored by broker test as seq 1 at `));
    expect(found.stdout).toMatch(/topic org\.test\.cli\.trace/);
    expect(found.stdout).toMatch(/herald \(zeromq\): published on its socket/);
    const json = await herald(["trace", ack.id, "--json", "--endpoint", tb.submit]);
    expect((JSON.parse(json.stdout) as MessageTrace).seq).toBe(1);
    const missing = await herald(["trace", "nope", "--endpoint", tb.submit]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/nope: not stored by broker test: never accepted here, or pruned since/);
    expect((await herald(["trace"])).code).toBe(2);
    const dir = mkdtempSync(join(tmpdir(), "herald-trace-none-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const down = await herald(["trace", "x", "--endpoint", `ipc://${join(dir, "none.sock")}`]);
    expect(down.code).toBe(4);
  });
});
