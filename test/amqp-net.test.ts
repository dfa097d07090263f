/**
 * Connection-level behaviour: options handed to amqplib, TLS client certificates (checked against a
 * local TLS server, since the test broker has no TLS listener), and a silent network stall detected by
 * heartbeats (B8) through an in-process TCP proxy.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../src/errors.js";
import { AmqpTransport, buildConnectArgs, resolveAmqpOptions } from "../src/transport/amqp.js";
import { Admin, makeMessages, uniq, waitFor } from "./amqp-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "herald-amqp-tls-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const transports: AmqpTransport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
});

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
}

/** A throwaway CA with one server (CN=localhost) and one client (CN=herald-test-client) certificate. */
function makePki(): void {
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=herald-test-ca",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  );
  for (const who of ["server", "client"]) {
    const cn = who === "server" ? "localhost" : "herald-test-client";
    openssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      `${who}.key`,
      "-out",
      `${who}.csr`,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      `${who}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-out",
      `${who}.pem`,
    );
  }
}

describe("connection options", () => {
  it("passes the heartbeat (seconds), a connection name and TLS files to amqplib", () => {
    const base = { name: "s1", url: "amqp://u:p@h:5672/%2F" };
    const a = buildConnectArgs(resolveAmqpOptions(base));
    expect(new URL(a.url).searchParams.get("heartbeat")).toBe("15");
    expect(a.url.startsWith("amqp://u:p@h:5672/%2F")).toBe(true);
    expect(a.socketOptions.clientProperties).toEqual({ connection_name: `herald:s1:${process.pid}` });
    expect(
      new URL(buildConnectArgs(resolveAmqpOptions({ ...base, heartbeat: 0 })).url).searchParams.get(
        "heartbeat",
      ),
    ).toBe("0");
    expect(
      new URL(buildConnectArgs(resolveAmqpOptions({ ...base, heartbeat: 2500 })).url).searchParams.get(
        "heartbeat",
      ),
    ).toBe("3");
    const explicit = buildConnectArgs(resolveAmqpOptions({ ...base, url: "amqp://h/%2F?heartbeat=7" }));
    expect(new URL(explicit.url).searchParams.get("heartbeat")).toBe("7");
  });

  it("reads TLS files, and names the problem when one is missing or the url is not amqps", () => {
    makePki();
    const o = resolveAmqpOptions({
      name: "s2",
      url: "amqps://h:5671/%2F",
      tls: { ca: join(dir, "ca.pem"), cert: join(dir, "client.pem"), key: join(dir, "client.key") },
    });
    const { socketOptions } = buildConnectArgs(o);
    expect(socketOptions.ca).toEqual([readFileSync(join(dir, "ca.pem"))]);
    expect(socketOptions.cert).toEqual(readFileSync(join(dir, "client.pem")));
    expect(socketOptions.key).toEqual(readFileSync(join(dir, "client.key")));
    const missing = resolveAmqpOptions({ ...o, tls: { ca: join(dir, "nope.pem") } });
    expect(() => buildConnectArgs(missing)).toThrow(/tls\.ca/);
    expect(() => resolveAmqpOptions({ name: "s3", url: "amqp://h/", tls: { ca: "x" } })).toThrow(ConfigError);
    expect(() => resolveAmqpOptions({ name: "s4", url: "http://h/" })).toThrow(/amqp:\/\//);
  });

  it("presents the client certificate in a real TLS handshake (amqps://)", async () => {
    makePki();
    const seen: Array<{ authorized: boolean; cn: unknown }> = [];
    const server = tls.createServer(
      {
        key: readFileSync(join(dir, "server.key")),
        cert: readFileSync(join(dir, "server.pem")),
        ca: readFileSync(join(dir, "ca.pem")),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (sock) => {
        seen.push({ authorized: sock.authorized, cn: sock.getPeerCertificate().subject?.CN });
        sock.destroy(); // not a broker: the handshake is what we check
      },
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const t = new AmqpTransport({
        name: uniq("tls"),
        url: `amqps://localhost:${port}/%2F`,
        exchange: "amq.topic",
        tls: { ca: join(dir, "ca.pem"), cert: join(dir, "client.pem"), key: join(dir, "client.key") },
        log: () => {},
      });
      transports.push(t);
      await t.open(); // the peer hangs up after the handshake: "down", retrying, not an error
      await waitFor("a TLS handshake", () => seen.length > 0, 10_000);
      expect(seen[0]).toEqual({ authorized: true, cn: "herald-test-client" });
      expect(t.health().state).toBe("down");
    } finally {
      server.close();
    }
  });
});

/** A TCP proxy to RabbitMQ whose current connections can be silently frozen (a half-open link). */
async function stallableProxy(): Promise<{ port: number; stall: () => void; close: () => void }> {
  const pairs = new Set<{ stalled: boolean; a: net.Socket; b: net.Socket }>();
  const server = net.createServer((a) => {
    const b = net.connect(5672, "127.0.0.1");
    const pair = { stalled: false, a, b };
    pairs.add(pair);
    a.on("data", (d) => pair.stalled || b.write(d));
    b.on("data", (d) => pair.stalled || a.write(d));
    const end = (): void => {
      pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on("error", end).on("close", end);
    b.on("error", end).on("close", end);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    stall: () => {
      for (const p of pairs) p.stalled = true; // bytes vanish, sockets stay open: no FIN, no RST
    },
    close: () => {
      for (const p of pairs) {
        p.a.destroy();
        p.b.destroy();
      }
      server.close();
    },
  };
}

describe("heartbeats", () => {
  it("detect a silent stall, reconnect and republish what was unconfirmed (lost = 0)", async () => {
    const proxy = await stallableProxy();
    const admin = await Admin.open();
    try {
      const exchange = await admin.exchange(uniq("ex"));
      const q = await admin.queue(uniq("q"), exchange);
      const t = new AmqpTransport({
        name: uniq("hb"),
        url: `amqp://guest:guest@127.0.0.1:${proxy.port}/%2F`,
        exchange,
        heartbeat: 1000,
        reconnectMaxDelay: 500,
        confirmTimeout: 60_000,
        log: () => {},
      });
      transports.push(t);
      await t.open();
      expect(t.health().state).toBe("up");
      proxy.stall();
      const msgs = makeMessages(50);
      const sending = t.send(msgs);
      // amqplib gives up after two missed heartbeats: about 2 s with a 1 s heartbeat.
      await waitFor("the stall to be detected", () => t.health().state === "down", 10_000);
      // Ours (amqplib's missed-heartbeat error) or RabbitMQ's: it misses our heartbeats too and may close
      // first, which reaches us through the proxy as an unexpected close. Either way the stall is detected.
      expect(t.health().lastError).toMatch(/heartbeat|unexpected close/i);
      await sending;
      expect(t.health().counters["reconnects"]).toBeGreaterThanOrEqual(1);
      expect(t.health().counters["republished"]).toBeGreaterThan(0);
      const got = await admin.drain(q, 50);
      expect(msgs.filter((m) => !got.has(m.id))).toEqual([]);
    } finally {
      proxy.close();
      await admin.close();
    }
  });
});
