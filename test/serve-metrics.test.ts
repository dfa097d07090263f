import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HeraldClient } from "../src/client/publisher.js";
import { http, parseExposition, rawExchange, waitForHttp } from "./helpers/metrics.js";
import { CLI, freePorts, type ServeProcess, serveEnv, startServe } from "./helpers/serve.js";

// `herald serve` with broker.metrics, as an operator runs it: a real process from dist/, real sockets.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "herald-serve-metrics-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A serve environment on free ports; `metrics` is the HOST:PORT value, or undefined to leave it unset. */
async function env(metrics: string | undefined, extra: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  const [hp, lp] = await freePorts(2);
  const e = serveEnv(
    tempDir(),
    { herald: hp!, legacy: lp! },
    { HERALD_BROKER__PUBLISH_DELAY: "0", ...extra },
  );
  if (metrics !== undefined) e["HERALD_BROKER__METRICS"] = metrics;
  return e;
}

/** Start serve and, when broker.metrics is set, wait for the endpoint too. */
async function serve(e: NodeJS.ProcessEnv): Promise<ServeProcess> {
  const s = await startServe(e);
  cleanups.push(async () => {
    if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL");
    await s.exited;
  });
  const address = e["HERALD_BROKER__METRICS"];
  if (address !== undefined) await waitForHttp(`http://${address}/livez`);
  return s;
}

function publisher(s: ServeProcess): HeraldClient {
  const client = new HeraldClient({ endpoint: s.submit, timeoutMs: 2000, retries: 0 });
  cleanups.push(() => client.close());
  return client;
}

async function scrape(base: string): Promise<Map<string, number>> {
  const r = await http(`${base}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
  return parseExposition(r.body).samples;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

describe("herald serve with broker.metrics", () => {
  it("serves the broker's status: head seq and each sink's cursor after N messages, ready and alive", async () => {
    const [port] = await freePorts(1);
    const base = `http://127.0.0.1:${port}`;
    const s = await serve(await env(`127.0.0.1:${port}`));
    expect(s.stderr()).toContain(`metrics endpoint listening url=${base}/metrics`);
    const client = publisher(s);
    const N = 5;
    for (let i = 0; i < N; i++) await client.publish("org.example.metrics", { i });
    let samples = await scrape(base);
    expect(samples.get("herald_outbox_head_seq{}")).toBe(N);
    expect(samples.get("herald_submit_messages_total{}")).toBe(N);
    expect(samples.get("herald_accepting{}")).toBe(1);
    // Both default PUB sockets, each with its own labels, catch up with the head.
    const cursors = (m: Map<string, number>) =>
      ["herald", "legacy"].map((sink) => m.get(`herald_sink_cursor{sink="${sink}",kind="zeromq"}`));
    for (let i = 0; i < 100 && !cursors(samples).every((c) => c === N); i++) {
      await sleep(100);
      samples = await scrape(base);
    }
    expect(cursors(samples)).toEqual([N, N]);
    expect(samples.get('herald_sink_delivered_total{sink="legacy",kind="zeromq"}')).toBe(N);
    expect(samples.get('herald_sink_lag_messages{sink="herald",kind="zeromq"}')).toBe(0);
    expect(samples.get('herald_sink_up{sink="herald",kind="zeromq"}')).toBe(1);
    expect(await http(`${base}/readyz`)).toMatchObject({ status: 200, body: "ok\n" });
    expect(await http(`${base}/livez`)).toMatchObject({ status: 200, body: "ok\n" });
    expect((await http(`${base}/nope`)).status).toBe(404);
    expect((await http(`${base}/metrics`, "PUT")).status).toBe(405);
  });

  it("keeps serving and accepting messages after malformed, oversized and unfinished HTTP requests", async () => {
    const [port] = await freePorts(1);
    const base = `http://127.0.0.1:${port}`;
    const s = await serve(await env(`127.0.0.1:${port}`));
    expect(await rawExchange(port!, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")).toMatch(
      /^HTTP\/1\.1 400 /,
    );
    expect(await rawExchange(port!, `GET /metrics HTTP/1.1\r\nX: ${"a".repeat(100_000)}\r\n\r\n`)).toMatch(
      /^HTTP\/1\.1 431 /,
    );
    // A request that never ends, left open while the broker goes on.
    const stuck = rawExchange(port!, "GET /metrics HTTP/1.1\r\nHost: x\r\n", 500);
    const ack = await publisher(s).publish("org.example.after-garbage", { ok: true });
    expect(ack.seq).toBe(1);
    await stuck;
    expect(await http(`${base}/livez`)).toMatchObject({ status: 200, body: "ok\n" });
    expect((await scrape(base)).get("herald_outbox_head_seq{}")).toBe(1);
    expect(s.child.exitCode).toBeNull();
  });

  it("stops on SIGTERM with exit 0 and frees the port", async () => {
    const [port] = await freePorts(1);
    const s = await serve(await env(`127.0.0.1:${port}`));
    // A scraper's kept-alive connection must not hold the stop.
    const idle = rawExchange(port!, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n", 10_000);
    await sleep(200);
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    expect(await idle).toMatch(/^HTTP\/1\.1 200 /);
    expect(s.stderr()).toContain("broker stopped");
    expect(await canListen(port!)).toBe(true);
  });

  it("listens on nothing new when broker.metrics is not set", async () => {
    const s = await serve(await env(undefined));
    expect(s.stderr()).toContain("broker ready");
    expect(s.stderr()).not.toContain("metrics endpoint");
  });
});

describe("herald serve with a broker.metrics it cannot use", () => {
  it("exits 3 on a bad value, naming the key and the fix, before starting anything", async () => {
    const e = await env("9479");
    const r = spawnSync(process.execPath, [CLI, "serve"], { env: e, encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(3);
    expect(r.stderr).toContain(
      "env HERALD_BROKER__METRICS: broker.metrics: number 9479: a port alone: write HOST:PORT, e.g. 127.0.0.1:9479",
    );
    expect(existsSync(join(e["HERALD_PATHS__RUNTIME_DIR"]!, "submit.sock"))).toBe(false);
  });

  it("exits 1 when the port is in use, naming the address and the fix, before the broker accepted anything", async () => {
    const [port] = await freePorts(1);
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => blocker.close(() => r())));
    const e = await env(`127.0.0.1:${port}`);
    const r = spawnSync(process.execPath, [CLI, "serve"], {
      env: e,
      encoding: "utf8",
      timeout: 30_000,
      killSignal: "SIGKILL",
    });
    expect(r.signal).toBeNull(); // it exited by itself: nothing left running
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port} (broker.metrics): the address is in use`);
    expect(r.stderr).toContain("set broker.metrics to a free port");
    // Bound before the broker starts: it never took a message it would then drop by exiting.
    expect(r.stderr).not.toContain("broker ready");
    expect(existsSync(join(e["HERALD_PATHS__RUNTIME_DIR"]!, "submit.sock"))).toBe(false);
    // The outbox was released: the same broker starts once the port is free.
    await new Promise<void>((res) => blocker.close(() => res()));
    const s = await serve(e);
    expect((await http(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
  });
});
