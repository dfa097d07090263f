/**
 * broker.metrics: the Prometheus rendering of Broker.status(), the HTTP endpoint in-process (real
 * sockets, a fake or a real broker) and the configuration key. `herald serve` with it: serve-metrics.test.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Broker, type BrokerStatus } from "../src/broker/broker.js";
import { type MetricsServer, renderMetrics, startMetricsServer } from "../src/broker/metrics.js";
import { loadConfigText } from "../src/config/index.js";
import { ConfigError } from "../src/errors.js";
import { startTestBroker } from "./helpers/broker.js";
import { firstChunkThenReset, http, parseExposition, rawExchange } from "./helpers/metrics.js";
import { freePorts } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const NOW = Date.parse("2026-12-01T12:00:00Z");

function sink(
  name: string,
  extra: Partial<BrokerStatus["sinks"][number]> = {},
): BrokerStatus["sinks"][number] {
  return {
    name,
    kind: "forward",
    cursor: 7,
    lag: 3,
    delivered: 7,
    retries: 2,
    skipped: 1,
    health: { state: "up", sent: 7, received: 0, counters: {} },
    ...extra,
  };
}

function status(extra: Partial<BrokerStatus> = {}): BrokerStatus {
  return {
    broker: "host-1",
    version: "0.1.0",
    pid: 42,
    startedAt: "2026-12-01T11:00:00.000Z",
    accepting: true,
    endpoints: ["ipc:///run/herald/submit.sock"],
    outbox: {
      headSeq: 10,
      totalRows: 12,
      pendingMessages: 3,
      pendingBytes: 300,
      oldestPendingAt: NOW - 30_000,
      sinks: {},
      commits: 5,
      restampedRows: 0,
    },
    sinks: [sink("hub")],
    sources: [],
    memory: { rss: 1000, heapUsed: 500, external: 100 },
    submit: {
      requests: 4,
      badRequests: 1,
      messages: 10,
      rejected: 2,
      paused: 0,
      loopsStopped: 0,
      admissionRejected: 2,
      admissionByCode: { UNSIGNED: 2 },
    },
    ...extra,
  };
}

describe("renderMetrics", () => {
  it("renders status() as valid exposition text with the values it holds", () => {
    const text = renderMetrics(status(), NOW);
    const { samples, types } = parseExposition(text);
    expect(samples.get('herald_build_info{version="0.1.0",broker="host-1"}')).toBe(1);
    expect(samples.get("herald_accepting{}")).toBe(1);
    expect(samples.get("herald_outbox_head_seq{}")).toBe(10);
    expect(samples.get("herald_outbox_rows{}")).toBe(12);
    expect(samples.get("herald_outbox_pending_messages{}")).toBe(3);
    expect(samples.get("herald_outbox_pending_bytes{}")).toBe(300);
    expect(samples.get("herald_outbox_oldest_pending_age_seconds{}")).toBe(30);
    expect(samples.get("herald_outbox_failed{}")).toBe(0);
    expect(samples.get('herald_sink_lag_messages{sink="hub",kind="forward"}')).toBe(3);
    expect(samples.get('herald_sink_cursor{sink="hub",kind="forward"}')).toBe(7);
    expect(samples.get('herald_sink_delivered_total{sink="hub",kind="forward"}')).toBe(7);
    expect(samples.get('herald_sink_retries_total{sink="hub",kind="forward"}')).toBe(2);
    expect(samples.get('herald_sink_skipped_total{sink="hub",kind="forward"}')).toBe(1);
    expect(samples.get('herald_sink_up{sink="hub",kind="forward"}')).toBe(1);
    expect(samples.get("herald_submit_requests_total{}")).toBe(4);
    expect(samples.get("herald_submit_messages_total{}")).toBe(10);
    expect(samples.get("herald_submit_rejected_total{}")).toBe(2);
    expect(samples.get("herald_submit_bad_requests_total{}")).toBe(1);
    expect(samples.get('herald_submit_admission_rejected_total{code="UNSIGNED"}')).toBe(2);
    expect(samples.get("herald_process_resident_memory_bytes{}")).toBe(1000);
    expect(samples.get("herald_process_heap_used_bytes{}")).toBe(500);
    expect(samples.get("herald_process_start_time_seconds{}")).toBe(
      Date.parse("2026-12-01T11:00:00Z") / 1000,
    );
    expect(types.get("herald_sink_delivered_total")).toBe("counter");
    expect(types.get("herald_sink_lag_messages")).toBe("gauge");
    // No subscriber count for a sink that has none (only PUB sockets count them).
    expect(text).not.toMatch(/^herald_sink_subscribers\{/m);
  });

  it("escapes backslash, double quote and line feed in label values", () => {
    const name = 'we"ird\\name\nx';
    const text = renderMetrics(status({ sinks: [sink(name, { kind: "zeromq" })] }), NOW);
    expect(text).toContain('herald_sink_lag_messages{sink="we\\"ird\\\\name\\nx",kind="zeromq"} 3\n');
    // Read back by a strict parser, the label is the name again.
    const { samples } = parseExposition(text);
    expect(samples.get(`herald_sink_cursor{sink="${name}",kind="zeromq"}`)).toBe(7);
  });

  it("says 1 for a failed outbox and 0 for not accepting, and a sink not up is down", () => {
    const failed = status({
      accepting: false,
      outbox: { ...status().outbox, failed: "disk I/O error" },
      sinks: [
        sink("rabbit", { kind: "amqp", health: { state: "blocked", sent: 0, received: 0, counters: {} } }),
      ],
    });
    const { samples } = parseExposition(renderMetrics(failed, NOW));
    expect(samples.get("herald_outbox_failed{}")).toBe(1);
    expect(samples.get("herald_accepting{}")).toBe(0);
    expect(samples.get('herald_sink_up{sink="rabbit",kind="amqp"}')).toBe(0);
  });

  it("gives an age of 0 with nothing pending, and for a message stamped ahead of the clock", () => {
    const none = status({ outbox: { ...status().outbox, oldestPendingAt: undefined } });
    expect(
      parseExposition(renderMetrics(none, NOW)).samples.get("herald_outbox_oldest_pending_age_seconds{}"),
    ).toBe(0);
    const ahead = status({ outbox: { ...status().outbox, oldestPendingAt: NOW + 60_000 } });
    expect(
      parseExposition(renderMetrics(ahead, NOW)).samples.get("herald_outbox_oldest_pending_age_seconds{}"),
    ).toBe(0);
  });

  it("renders sources and PUB sockets' subscriber counts", () => {
    const s = status({
      sinks: [
        sink("herald", {
          kind: "zeromq",
          health: { state: "up", sent: 0, received: 0, counters: { subscribers: 4 } },
        }),
      ],
      sources: [
        {
          name: "fedora",
          kind: "amqp",
          waiting: 5,
          counters: { ingested: 9, duplicates: 1, refused: 0, retries: 3 },
          health: { state: "down", sent: 0, received: 9, counters: {} },
        },
      ],
    });
    const { samples } = parseExposition(renderMetrics(s, NOW));
    expect(samples.get('herald_sink_subscribers{sink="herald",kind="zeromq"}')).toBe(4);
    expect(samples.get('herald_source_waiting_messages{source="fedora",kind="amqp"}')).toBe(5);
    expect(samples.get('herald_source_ingested_total{source="fedora",kind="amqp"}')).toBe(9);
    expect(samples.get('herald_source_retries_total{source="fedora",kind="amqp"}')).toBe(3);
    expect(samples.get('herald_source_up{source="fedora",kind="amqp"}')).toBe(0);
  });
});

/** A broker stand-in whose status a test changes, or makes throw. */
class FakeBroker {
  current: BrokerStatus = status();
  failWith: Error | undefined;
  status(): BrokerStatus {
    if (this.failWith) throw this.failWith;
    return this.current;
  }
}

async function serveMetrics(broker: { status(): BrokerStatus }): Promise<{ m: MetricsServer; port: number }> {
  const [port] = await freePorts(1);
  const m = await startMetricsServer({ address: `127.0.0.1:${port}`, broker });
  cleanups.push(() => m.close());
  return { m, port: port! };
}

describe("the metrics endpoint", () => {
  it("serves /metrics in format 0.0.4, /livez, and HEAD without a body", async () => {
    const broker = new FakeBroker();
    // Nothing pending: no age that grows between the GET and the HEAD, so both have one length.
    broker.current = status({ outbox: { ...status().outbox, oldestPendingAt: undefined } });
    const { m } = await serveMetrics(broker);
    const r = await http(`${m.url}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(parseExposition(r.body).samples.get("herald_outbox_head_seq{}")).toBe(10);
    expect((await http(`${m.url}/metrics?name[]=x`)).status).toBe(200); // Prometheus' params are ignored
    expect(await http(`${m.url}/livez`)).toMatchObject({ status: 200, body: "ok\n" });
    const head = await http(`${m.url}/metrics`, "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    expect(Number(head.headers["content-length"])).toBe(Buffer.byteLength(r.body));
  });

  it("answers 404 for other paths and 405 for other methods", async () => {
    const { m } = await serveMetrics(new FakeBroker());
    expect((await http(`${m.url}/`)).status).toBe(404);
    expect((await http(`${m.url}/metrics/x`)).status).toBe(404);
    const post = await http(`${m.url}/metrics`, "POST");
    expect(post.status).toBe(405);
    expect(post.headers["allow"]).toBe("GET, HEAD");
    expect((await http(`${m.url}/readyz`, "DELETE")).status).toBe(405);
  });

  it("/readyz: 200, then 503 with a one-line reason when not accepting, failed, without status, draining", async () => {
    const broker = new FakeBroker();
    const { m } = await serveMetrics(broker);
    expect(await http(`${m.url}/readyz`)).toMatchObject({ status: 200, body: "ok\n" });
    broker.current = status({ accepting: false });
    expect(await http(`${m.url}/readyz`)).toMatchObject({
      status: 503,
      body: "not ready: the broker is not accepting messages\n",
    });
    broker.current = status({ accepting: false, outbox: { ...status().outbox, failed: "disk\nbroke" } });
    expect(await http(`${m.url}/readyz`)).toMatchObject({
      status: 503,
      body: "not ready: outbox failed: disk broke\n",
    });
    broker.failWith = new Error("the outbox is closed: create a new one");
    expect((await http(`${m.url}/readyz`)).status).toBe(503);
    // A broker that cannot say its status is an error for the scrape, never a crash.
    expect(await http(`${m.url}/metrics`)).toMatchObject({
      status: 503,
      body: "no broker status: the outbox is closed: create a new one\n",
    });
    broker.failWith = undefined;
    broker.current = status();
    expect((await http(`${m.url}/readyz`)).status).toBe(200);
    m.drain();
    expect(await http(`${m.url}/readyz`)).toMatchObject({ status: 503, body: "not ready: shutting down\n" });
    expect((await http(`${m.url}/livez`)).status).toBe(200); // alive while it stops
  });

  it("survives garbage, oversized headers and clients that vanish mid-response", async () => {
    const broker = new FakeBroker();
    // A big body (several MB): the client below goes away while it is being written.
    broker.current = status({ sinks: Array.from({ length: 20_000 }, (_, i) => sink(`sink-${i}`)) });
    const { m, port } = await serveMetrics(broker);
    expect(await rawExchange(port, "\x00\x01\x02GARBAGE\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 /);
    const huge = `GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`;
    expect(await rawExchange(port, huge)).toMatch(/^HTTP\/1\.1 431 /);
    // Read the first bytes of the answer, then reset the connection.
    const first = await firstChunkThenReset(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    expect(first).toMatch(/^HTTP\/1\.1 200 /);
    expect(await http(`${m.url}/livez`)).toMatchObject({ status: 200, body: "ok\n" });
  });

  it("cuts a client that never finishes its request (slowloris) within seconds", async () => {
    const { port } = await serveMetrics(new FakeBroker());
    const started = Date.now();
    const got = await rawExchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n", 15_000);
    expect(Date.now() - started).toBeLessThan(9000); // headersTimeout 5 s, checked every second
    expect(got).toMatch(/^HTTP\/1\.1 408 /);
  }, 20_000);

  it("a client holding every connection slot does not keep health probes out: the oldest is cut", async () => {
    const { m, port } = await serveMetrics(new FakeBroker());
    // 80 slowloris connections, more than the cap of 64: each new one pushes the oldest out.
    const slow = Array.from({ length: 80 }, () =>
      rawExchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n", 8000),
    );
    await new Promise((r) => setTimeout(r, 300));
    expect(await http(`${m.url}/livez`)).toMatchObject({ status: 200, body: "ok\n" });
    // The first 16 (and one more for the probe) were cut at once with no answer; the rest wait for their 408.
    const started = Date.now();
    const first = await slow[0];
    expect(first).toBe("");
    expect(Date.now() - started).toBeLessThan(1000);
    await m.close();
    await Promise.all(slow);
  }, 20_000);

  it("close() cuts open connections at once (a request still arriving too) and frees the port", async () => {
    const { m, port } = await serveMetrics(new FakeBroker());
    const idle = rawExchange(port, "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n", 8000); // kept alive
    const unfinished = rawExchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n", 8000);
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await m.close();
    // server.close() alone would wait for the unfinished request (its 5 s headersTimeout).
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await idle).toMatch(/^HTTP\/1\.1 200 /);
    expect(await unfinished).toBe("");
    await expect(http(`http://127.0.0.1:${port}/livez`)).rejects.toThrow(/ECONNREFUSED/);
    await m.close(); // idempotent
  });

  it("a port in use fails the start with the address and the fix", async () => {
    const [port] = await freePorts(1);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())));
    await expect(
      startMetricsServer({ address: `127.0.0.1:${port}`, broker: new FakeBroker() }),
    ).rejects.toMatchObject({
      code: "TRANSPORT",
      message: expect.stringMatching(
        new RegExp(
          `cannot listen on 127\\.0\\.0\\.1:${port} \\(broker\\.metrics\\): the address is in use.*free port`,
        ),
      ),
    });
  });

  it("refuses an address it cannot parse with a ConfigError", async () => {
    await expect(startMetricsServer({ address: "9479", broker: new FakeBroker() })).rejects.toBeInstanceOf(
      ConfigError,
    );
  });
});

describe("the metrics endpoint on a real broker", () => {
  it("answers /readyz 503 while the broker is not started yet (herald serve binds it first)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-metrics-pre-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const broker = new Broker({
      name: "pre",
      submitEndpoints: [],
      outbox: { path: join(dir, "outbox.db") },
      sinks: [],
      maxBodyBytes: 1 << 20,
      maxBatch: 1000,
    });
    const { m } = await serveMetrics(broker);
    const ready = await http(`${m.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/not running: call start\(\) first/);
    expect((await http(`${m.url}/livez`)).status).toBe(200);
  });

  it("shows what was published; after a storage fail-stop /readyz is 503 and /metrics says failed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-metrics-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const tb = await startTestBroker({
      outbox: { path: join(dir, "outbox.db"), failpoint: "outbox.before_commit=error@4" },
    });
    cleanups.push(() => tb.stop());
    const { m } = await serveMetrics(tb.broker);
    const client = tb.client({ retries: 0 });
    for (let i = 0; i < 3; i++) await client.publish("org.example.metrics", { i });
    const before = parseExposition((await http(`${m.url}/metrics`)).body).samples;
    expect(before.get("herald_outbox_head_seq{}")).toBe(3);
    expect(before.get("herald_submit_messages_total{}")).toBe(3);
    expect(before.has('herald_sink_cursor{sink="herald",kind="zeromq"}')).toBe(true);
    expect((await http(`${m.url}/readyz`)).status).toBe(200);

    await expect(client.publish("org.example.metrics", { i: 3 })).rejects.toMatchObject({
      code: "STORAGE_ERROR",
    });
    const ready = await http(`${m.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/^not ready: outbox failed: .+\n$/);
    const after = parseExposition((await http(`${m.url}/metrics`)).body).samples;
    expect(after.get("herald_outbox_failed{}")).toBe(1);
    expect(after.get("herald_accepting{}")).toBe(0);
  });
});

describe("broker.metrics configuration", () => {
  const load = (value: string | undefined) =>
    loadConfigText(undefined, { env: value === undefined ? {} : { HERALD_BROKER__METRICS: value } });

  it("is off by default, and set from HERALD_BROKER__METRICS or the file", () => {
    expect(load(undefined).config.broker.metrics).toBeNull();
    expect(load("127.0.0.1:9479").config.broker.metrics).toBe("127.0.0.1:9479");
    expect(load('"[::1]:9479"').config.broker.metrics).toBe("[::1]:9479");
    expect(load("null").config.broker.metrics).toBeNull();
    const file = loadConfigText("broker:\n  metrics: 0.0.0.0:9479\n", {
      file: "/etc/herald/herald.yaml",
      env: {},
    });
    expect(file.config.broker.metrics).toBe("0.0.0.0:9479");
  });

  it.each([
    ["9479", "a port alone: write HOST:PORT, e.g. 127.0.0.1:9479"],
    ["http://127.0.0.1:9479/metrics", "without a scheme"],
    ["::1:9479", "put an IPv6 address in brackets"],
    [":9479", "name the host"],
    ["127.0.0.1:0", "port 0 is out of range 1-65535"],
    ["127.0.0.1:65536", "port 65536 is out of range"],
    ["localhost", "expected HOST:PORT"],
    ["true", "expected HOST:PORT as a string"],
    ['"[:::::]:9479"', "[:::::] is not an IPv6 address"],
    ["999.1.1.1:9479", "999.1.1.1 is not an IPv4 address"],
  ])("refuses %j naming the key and the fix", (value, fix) => {
    let err: unknown;
    try {
      load(value);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("env HERALD_BROKER__METRICS: broker.metrics:");
    expect((err as Error).message).toContain(fix);
  });

  it("names the file and line of a bad value in the file", () => {
    expect(() =>
      loadConfigText("broker:\n  metrics: 127.0.0.1\n", { file: "/etc/herald/herald.yaml", env: {} }),
    ).toThrow(/\/etc\/herald\/herald\.yaml:2:\d+: broker\.metrics: "127\.0\.0\.1": expected HOST:PORT/);
  });
});
