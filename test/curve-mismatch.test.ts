import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HeraldError, SecurityError } from "../src/errors.js";
import { generateIdentity, type Identity } from "../src/security/index.js";
import { ForwardTransport } from "../src/transport/forward.js";
import { createLogger } from "../src/util/log.js";
import { zmq } from "../src/util/zeromq.js";
import { createMessage } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";
import { Closer, type SecureBroker, startSecureBroker } from "./security-broker-helpers.js";

/**
 * CURVE on one side of a submit connection only: libzmq fails the handshake ("mechanism mismatch") on
 * both ends, and retries it forever. The client must say which side wants what, at once, instead of
 * timing out with "is herald serve running?"; the broker must log it.
 */

let root: string;
let alice: Identity;
const closer = new Closer();
const running: SecureBroker[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "herald-mismatch-"));
  alice = generateIdentity("alice", join(root, "client-keys"));
});
afterEach(async () => {
  await closer.closeAll();
  for (const b of running.splice(0)) await b.stop();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function broker(name: string, curve: boolean): Promise<{ b: SecureBroker; server: Identity }> {
  const dir = join(root, name);
  const server = generateIdentity(name, join(dir, "keys"));
  const b = await startSecureBroker(
    dir,
    { security: curve ? { identity: name, curve: true } : {} },
    { name },
  );
  running.push(b);
  return { b, server };
}

/**
 * Three 3-second tries: timeouts would take 9 s, so an answer within 6 s is the handshake's. Now and then
 * a socket's handshake ends in a silent close instead (see Requester's Trouble) and that try times out:
 * the bound leaves room for one.
 */
const SLOW = { timeoutMs: 3000, retries: 2 };
const QUICK_MS = 6000;

async function failure(p: Promise<unknown>): Promise<{ err: HeraldError; ms: number }> {
  const t0 = Date.now();
  const err = await p.then(
    () => expect.fail("expected a failure"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HeraldError);
  return { err: err as HeraldError, ms: Date.now() - t0 };
}

const mismatchLines = (b: SecureBroker, text: string): string[] =>
  b.logs.filter((l) => l.includes(text) && l.includes(b.tcp));

describe("CURVE on one side only", () => {
  it("a plain client at a CURVE endpoint is told the broker requires CURVE; the broker logs it once", async () => {
    const { b } = await broker("curvy", true);
    const client = closer.client({ endpoint: b.tcp, ...SLOW });
    const { err, ms } = await failure(client.publish("org.test.x", { n: 1 }));
    expect(err).toBeInstanceOf(SecurityError);
    expect(err.message).toContain(`the broker at ${b.tcp} requires CURVE`);
    expect(err.message).toContain("security.serverKey");
    expect(err.message).toContain("sinks[].serverKey");
    expect(err.message).not.toContain("herald serve");
    expect(err.details).toMatchObject({ endpoint: b.tcp, curve: false });
    expect(ms).toBeLessThan(QUICK_MS);
    const text = "a client without CURVE tried this CURVE endpoint";
    expect(await waitFor(() => mismatchLines(b, text).length > 0, 3000)).toBe(true);
    // Three sockets (retries: 2), each failing its handshake: rate-limited to one line.
    await new Promise((r) => setTimeout(r, 300));
    expect(mismatchLines(b, text)).toHaveLength(1);
    expect(mismatchLines(b, text)[0]).toContain('"level":"warn"');
  });

  it("a CURVE client at a plain endpoint is told the broker does not use CURVE there; the broker logs it", async () => {
    const { b } = await broker("plain", false);
    const server = generateIdentity("elsewhere", join(root, "elsewhere")); // any key: no handshake gets that far
    const client = closer.client({
      endpoint: b.tcp,
      curve: { identity: alice, serverKey: server.curvePublic },
      ...SLOW,
    });
    const { err, ms } = await failure(client.publish("org.test.x", { n: 1 }));
    expect(err).toBeInstanceOf(SecurityError);
    expect(err.message).toContain(`the broker at ${b.tcp} does not use CURVE on this endpoint`);
    expect(err.message).toContain("turn security.curve off");
    expect(err.message).toContain("enable CURVE on the broker");
    expect(err.details).toMatchObject({ endpoint: b.tcp, curve: true });
    expect(ms).toBeLessThan(QUICK_MS);
    const text = "a CURVE client tried this plain endpoint";
    expect(await waitFor(() => mismatchLines(b, text).length > 0, 3000)).toBe(true);
  });

  it("a forward sink without serverKey to a CURVE hub goes down with the reason, not a timeout", async () => {
    const { b } = await broker("hub", true);
    const logs: string[] = [];
    const log = createLogger({ level: "warn", format: "json", write: (l) => logs.push(l) });
    const sink = closer.add(
      new ForwardTransport({ name: "toCurve", endpoint: b.tcp, brokerName: "edge", timeoutMs: 3000, log }),
    );
    const msg = createMessage({ topic: "org.test.fwd", body: { n: 1 } });
    // One try per send (the dispatcher retries): a second send in case the first met a silent close.
    let { err, ms } = await failure(sink.send([msg]));
    if (err.code === "TIMEOUT") ({ err, ms } = await failure(sink.send([msg])));
    expect(err.message).toContain(`the broker at ${b.tcp} requires CURVE`);
    expect(ms).toBeLessThan(QUICK_MS);
    const health = sink.health();
    expect(health.state).toBe("down");
    expect(health.lastError).toContain("sinks[].serverKey");
    const line = logs.find((l) => l.includes("forward sink holds its messages"));
    expect(line).toContain("requires CURVE");
  });

  it("a timeout after the broker closed our handshakes without a word says so, not 'is herald serve running?'", async () => {
    // A CURVE endpoint sometimes closes a plain client's connection (EPIPE) instead of saying "mechanism
    // mismatch": a TCP server that closes every connection stands in for it, deterministically.
    const [port] = await freePorts(1);
    const server: Server = createServer((c) => {
      c.on("error", () => {});
      c.once("data", () => c.destroy());
    });
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    closer.add({ close: () => new Promise<void>((r) => server.close(() => r())) });
    const endpoint = `tcp://127.0.0.1:${port}`;
    const client = closer.client({ endpoint, timeoutMs: 400, retries: 0 });
    const { err } = await failure(client.publish("org.test.x", { n: 1 }));
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toContain(
      "closed the connection during the ZeroMQ handshake (is it a herald broker, and not restarting?); a broker does that when it requires CURVE",
    );
    expect(err.message).toContain("security.serverKey");
    expect(err.message).not.toContain("herald serve");
  });

  it("a CURVE client with a wrong server key is told the broker closed its handshakes, with the key hint", async () => {
    const { b } = await broker("wrongkey", true);
    const stranger = generateIdentity("stranger", join(root, "stranger"));
    const client = closer.client({
      endpoint: b.tcp,
      curve: { identity: alice, serverKey: stranger.curvePublic },
      timeoutMs: 400,
      retries: 0,
    });
    const { err } = await failure(client.publish("org.test.x", { n: 1 }));
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toContain("closed the connection during the ZeroMQ handshake");
    expect(err.message).toContain("when its CURVE key is not the server key we use");
    expect(err.message).toContain("over CURVE a wrong server key looks the same");
  });

  it("a request whose earlier try met the mismatch and whose last try timed out still names the mismatch", async () => {
    // Connection 1 reaches a CURVE socket (mismatch, at once); every later one is closed mid-handshake, as
    // a CURVE endpoint sometimes does instead (EPIPE, then a timeout). The upstream connection is opened
    // first and its greeting handed over at once: then the client is the side that learns the mismatch (a
    // broker greeting that comes late is what makes a real broker close silently).
    const [front, back] = (await freePorts(2)) as [number, number];
    const curve = closer.add(
      new zmq.Router({ linger: 0, curveServer: true, curveSecretKey: zmq.curveKeyPair().secretKey }),
    );
    await curve.bind(`tcp://127.0.0.1:${back}`);
    const up = connect(back, "127.0.0.1");
    up.on("error", () => {});
    const early: Buffer[] = [];
    let client: Socket | undefined;
    up.on("data", (d: Buffer) => (client ? client.write(d) : early.push(d)));
    expect(await waitFor(() => Buffer.concat(early).length >= 10, 3000)).toBe(true); // its signature
    let connections = 0;
    const proxy: Server = createServer((c) => {
      c.on("error", () => {});
      if (++connections > 1) return void c.once("data", () => c.destroy());
      client = c;
      for (const d of early.splice(0)) c.write(d);
      c.on("data", (d) => up.write(d));
      c.on("end", () => up.end());
      up.on("end", () => c.end());
    });
    await new Promise<void>((r) => proxy.listen(front, "127.0.0.1", r));
    closer.add({ close: () => new Promise<void>((r) => proxy.close(() => r())) });
    closer.add({
      close: () => {
        up.destroy();
        client?.destroy();
      },
    });
    const herald = closer.client({ endpoint: `tcp://127.0.0.1:${front}`, timeoutMs: 400, retries: 1 });
    const first = await failure(herald.publish("org.test.x", { n: 1 }));
    expect(connections).toBeGreaterThan(1);
    expect(first.err.code).toBe("SECURITY");
    expect(first.err.message).toContain(`the broker at tcp://127.0.0.1:${front} requires CURVE`);
    // The next request meets only closed handshakes: the mismatch is not this request's, so not blamed.
    const second = await failure(herald.publish("org.test.x", { n: 2 }));
    expect(second.err.code).toBe("TIMEOUT");
    expect(second.err.message).toContain("closed the connection during the ZeroMQ handshake");
  });
});
