import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { SecurityError } from "../src/errors.js";
import {
  curveClientOptions,
  curveDealerOptions,
  curveServerOptions,
  identityFromSeed,
  onDeath,
  PeerIdentities,
  requireZap,
  revokeKey,
  routingIdFor,
  startZap,
  stopZap,
  TrustStore,
  trustKey,
  type ZapDecision,
  zapRunning,
  zapStats,
} from "../src/security/index.js";
import { killZapForTest, ZAP_ENDPOINT } from "../src/security/zap.js";

const broker = identityFromSeed("broker", Buffer.alloc(32, 10));
const alice = identityFromSeed("alice", Buffer.alloc(32, 11));
const mallory = identityFromSeed("mallory", Buffer.alloc(32, 12));
const carol = identityFromSeed("carol", Buffer.alloc(32, 13));
const stranger = identityFromSeed("stranger", Buffer.alloc(32, 14));

let dir: string;
let trust: TrustStore;
let peers: PeerIdentities;
const decisions: ZapDecision[] = [];
const warnings: string[] = [];
const open: Array<zmq.Router | zmq.Dealer> = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "herald-zap-"));
  for (const id of [alice, carol]) trustKey(id, dir);
  trust = new TrustStore(dir);
  trust.reload();
  peers = new PeerIdentities(trust, broker.curvePublic);
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
afterAll(async () => {
  await stopZap();
  rmSync(dir, { recursive: true, force: true });
});

async function recvWithin(sock: zmq.Router, ms: number): Promise<Buffer[] | undefined> {
  sock.receiveTimeout = ms;
  try {
    return await sock.receive();
  } catch (err) {
    if ((err as { code?: string }).code === "EAGAIN") return undefined;
    throw err;
  }
}

async function server(domain = "submit"): Promise<zmq.Router> {
  requireZap(); // what every CURVE server must do before binding
  const s = new zmq.Router({ linger: 0, ...curveServerOptions(broker, domain) });
  open.push(s);
  await s.bind("tcp://127.0.0.1:*");
  return s;
}

function dealer(opts: ConstructorParameters<typeof zmq.Dealer>[0], endpoint: string): zmq.Dealer {
  const d = new zmq.Dealer({ linger: 0, reconnectInterval: 50, ...opts });
  open.push(d);
  d.connect(endpoint);
  return d;
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("ZAP handler (real zeromq.js sockets)", () => {
  it("fails closed: requireZap() throws while no handler runs", () => {
    expect(zapRunning()).toBe(false);
    expect(() => requireZap()).toThrow(SecurityError);
    expect(() => requireZap()).toThrow(/startZap/);
  });

  it("fact: libzmq's ZAP request does not carry the client's routing id (why peer.ts exists)", async () => {
    const raw = new zmq.Router({ linger: 0 });
    open.push(raw);
    await raw.bind(ZAP_ENDPOINT);
    const s = new zmq.Router({ linger: 0, ...curveServerOptions(broker, "probe") });
    open.push(s);
    await s.bind("tcp://127.0.0.1:*");
    const d = dealer(
      { ...curveClientOptions(alice, broker.curvePublic), routingId: "client-rid" },
      s.lastEndpoint!,
    );
    void d.send("x").catch(() => {});
    const req = await raw.receive();
    expect(req[7]?.toString()).toBe("CURVE");
    expect(req[8]?.equals(alice.curvePublicRaw)).toBe(true);
    expect(req[6]?.toString()).not.toBe("client-rid");
    await raw.send([req[0]!, Buffer.alloc(0), "1.0", req[3]!, "200", "OK", "alice", Buffer.alloc(0)]);
    expect((await recvWithin(s, 5000))?.[0]?.toString()).toBe("client-rid");
    for (const x of open.splice(0)) x.close();
  });

  it("starts, and refuses a second handler", async () => {
    await startZap(trust, {
      onDecision: (d) => decisions.push(d),
      logger: { info: () => {}, warn: (m) => warnings.push(m) },
    });
    expect(zapRunning()).toBe(true);
    expect(() => requireZap()).not.toThrow();
    await expect(startZap(trust)).rejects.toThrow(/already running/);
  });

  it("admits a trusted key and records routing id -> identity", async () => {
    const srv = await server();
    const d = dealer(curveDealerOptions(alice, broker.curvePublic), srv.lastEndpoint!);
    await d.send("from alice");
    const frames = await recvWithin(srv, 5000);
    expect(frames?.[1]?.toString()).toBe("from alice");
    expect(peers.identityOf(frames![0]!)).toBe("alice");
    expect(decisions.some((x) => x.allowed && x.identity === "alice" && x.domain === "submit")).toBe(true);
  });

  it("an untrusted key gets nothing through; after adding its .pub and reloading, it does, without restart", async () => {
    const srv = await server();
    const d = dealer(curveDealerOptions(mallory, broker.curvePublic), srv.lastEndpoint!);
    const clientAuthFailures: number[] = [];
    d.events.on("handshake:error:auth", (e) => clientAuthFailures.push(e.error.status));
    const deniedBefore = zapStats().denied;
    void d.send("before trust").catch(() => {});
    expect(await recvWithin(srv, 800)).toBeUndefined();
    await waitFor("client auth failure event", () => clientAuthFailures.length > 0);
    expect(zapStats().denied).toBeGreaterThan(deniedBefore);
    expect(warnings.some((w) => /denied/.test(w))).toBe(true);

    trustKey(mallory, dir);
    expect(trust.reload().added).toContain(mallory.keyId);
    // libzmq ends a session on a handshake (auth) failure and does not reconnect it: a client retries
    // with a new socket. The server and its ZAP handler keep running, untouched.
    const d2 = dealer(curveDealerOptions(mallory, broker.curvePublic), srv.lastEndpoint!);
    await d2.send("after trust");
    const got: string[] = [];
    let rid: Buffer | undefined;
    const deadline = Date.now() + 5000;
    while (!got.includes("after trust") && Date.now() < deadline) {
      const f = await recvWithin(srv, 500);
      if (f) {
        got.push(f[1]!.toString());
        rid = f[0];
      }
    }
    expect(got).toEqual(["after trust"]); // the message sent while untrusted never arrives
    expect(peers.identityOf(rid!)).toBe("mallory");
  });

  it("a client using the wrong server key cannot get a message through", async () => {
    const srv = await server();
    const d = dealer(curveDealerOptions(alice, stranger.curvePublic), srv.lastEndpoint!);
    void d.send("wrong server key").catch(() => {});
    expect(await recvWithin(srv, 800)).toBeUndefined();
  });

  it("a routing id claiming another identity is not believed; no routing id means anonymous", async () => {
    const srv = await server();
    // carol (trusted) replays a claim alice made for ANOTHER server, and invents one for alice.
    const replayed = routingIdFor(alice, stranger.curvePublic);
    const invented = `${alice.keyId}~0123456789ab~${Buffer.alloc(64, 1).toString("base64url")}`;
    const d1 = dealer(
      { ...curveClientOptions(carol, broker.curvePublic), routingId: replayed },
      srv.lastEndpoint!,
    );
    const d2 = dealer(
      { ...curveClientOptions(carol, broker.curvePublic), routingId: invented },
      srv.lastEndpoint!,
    );
    const d3 = dealer(curveClientOptions(carol, broker.curvePublic), srv.lastEndpoint!);
    await Promise.all([d1.send("1"), d2.send("2"), d3.send("3")]);
    const seen = new Map<string, string | undefined>();
    for (let i = 0; i < 3; i++) {
      const f = await recvWithin(srv, 5000);
      seen.set(f![1]!.toString(), peers.identityOf(f![0]!));
    }
    expect([...seen.keys()].sort()).toEqual(["1", "2", "3"]);
    expect([...seen.values()]).toEqual([undefined, undefined, undefined]);
  });

  it("several sockets of one identity connect at once (unique routing ids), all attributed", async () => {
    const srv = await server();
    const ds = [0, 1, 2].map(() => dealer(curveDealerOptions(alice, broker.curvePublic), srv.lastEndpoint!));
    await Promise.all(ds.map((d, i) => d.send(`n${i}`)));
    const who = new Set<string | undefined>();
    const rids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const f = await recvWithin(srv, 5000);
      rids.add(f![0]!.toString());
      who.add(peers.identityOf(f![0]!));
    }
    expect(rids.size).toBe(3);
    expect([...who]).toEqual(["alice"]);
  });

  it("peers.identityOf forgets a peer whose key was revoked after it connected", async () => {
    const srv = await server();
    const d = dealer(curveDealerOptions(carol, broker.curvePublic), srv.lastEndpoint!);
    await d.send("carol");
    const f = await recvWithin(srv, 5000);
    expect(peers.identityOf(f![0]!)).toBe("carol");
    revokeKey("carol", dir);
    trust.reload();
    expect(peers.identityOf(f![0]!)).toBeUndefined();
  });

  it("if the handler loop dies: onDeath fires and later binds are refused; restart works", async () => {
    const deaths: Error[] = [];
    const off = onDeath((e) => deaths.push(e));
    killZapForTest();
    await waitFor("death", () => deaths.length > 0);
    off();
    expect(zapRunning()).toBe(false);
    expect(() => requireZap()).toThrow(/died/);
    await startZap(trust);
    expect(() => requireZap()).not.toThrow();
    await stopZap();
    expect(() => requireZap()).toThrow(/no ZAP handler/);
  });
});
