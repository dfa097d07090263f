import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { subscribe } from "../src/client/index.js";
import { HeraldClient } from "../src/client/publisher.js";
import { ConfigError, HeraldError, SecurityError } from "../src/errors.js";
import { generateIdentity, type Identity, signMessage, TrustStore, trustKey } from "../src/security/index.js";
import { killZapForTest } from "../src/security/zap.js";
import { ForwardTransport } from "../src/transport/forward.js";
import { createMessage } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";
import { Closer, collect, linkUp, type SecureBroker, startSecureBroker } from "./security-broker-helpers.js";

let root: string;
let alice: Identity;
let mallory: Identity;
const closer = new Closer();
const running: SecureBroker[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "herald-secc-"));
  alice = generateIdentity("alice", join(root, "client-keys"));
  mallory = generateIdentity("mallory", join(root, "client-keys"));
});
afterEach(async () => {
  await closer.closeAll();
  for (const b of running.splice(0)) await b.stop();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A broker with its own identity and CURVE on; `trusted` go into its trust dir. */
async function curveBroker(
  name: string,
  trusted: Identity[],
  security: Record<string, unknown> = {},
  extra: Parameters<typeof startSecureBroker>[2] = {},
): Promise<{ b: SecureBroker; id: Identity; dir: string }> {
  const dir = join(root, name);
  const id = generateIdentity(name, join(dir, "keys"));
  for (const t of trusted) trustKey(t, join(dir, "trust"));
  const b = await startSecureBroker(
    dir,
    { security: { identity: name, curve: true, reloadInterval: 100, ...security } },
    { name, ...extra },
  );
  running.push(b);
  return { b, id, dir };
}

const curveOf = (me: Identity, server: Identity) => ({
  serverKey: server.curvePublic,
  publicKey: me.curvePublic,
  secretKey: me.curveSecret,
});

describe("CURVE on the broker's TCP sockets", () => {
  it("admits trusted keys; an untrusted key cannot submit or subscribe until its .pub is trusted, no restart", async () => {
    const {
      b,
      id: server,
      dir,
    } = await curveBroker("b1", [alice], {
      policy: { alice: ["org.alice.#"], bob: ["org.bob.#"] },
    });
    // alice over CURVE: accepted, and her routing-id claim makes the unsigned message hers for the policy.
    const a = closer.client({ endpoint: b.tcp, curve: { identity: alice, serverKey: server.curvePublic } });
    expect((await a.publish("org.alice.hello", { n: 1 })).id).toBeTruthy();
    // The policy sees alice (from her signed routing id) even though the message is unsigned...
    const denied = await a.publish("org.bob.x", {}).catch((e: unknown) => e);
    expect((denied as HeraldError).code).toBe("UNAUTHORIZED_TOPIC");
    expect((denied as HeraldError).message).toContain("identity 'alice'");
    // ...and the refusal is logged with that identity, never with the routing id (a bearer token).
    const line = b.logs.find((l) => l.includes("message refused"));
    expect(line).toContain('"identity":"alice"');
    expect(b.logs.some((l) => l.includes(`${alice.keyId}~`))).toBe(false);
    const trust = new TrustStore(join(dir, "trust"));
    trust.reload();
    const aliceSub = closer.subscriber(b.pub.herald, { curve: curveOf(alice, server) });
    const seenByAlice = collect(aliceSub).got;
    await linkUp(async () => (await a.publish("org.alice.probe", {})).id, seenByAlice);

    // mallory: refused at the handshake, reported as a typed error (not a hang, not a timeout).
    const m = closer.client({
      endpoint: b.tcp,
      retries: 2,
      timeoutMs: 5000,
      curve: { identity: mallory, serverKey: server.curvePublic },
    });
    const err = await m.publish("org.misc.x", {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecurityError);
    expect((err as SecurityError).message).toContain(`refused our CURVE key ${mallory.keyId}`);
    expect((err as SecurityError).message).toContain("mallory.pub");
    const malSub = closer.subscriber(b.pub.herald, { curve: curveOf(mallory, server) });
    const seenByMallory = collect(malSub).got;
    const [secret] = await a.submit([createMessage({ topic: "org.alice.secret", body: { s: 1 } })]);
    expect(secret).not.toBeInstanceOf(HeraldError);
    expect(await waitFor(() => seenByAlice.length >= 2)).toBe(true);
    expect(seenByMallory).toEqual([]);
    expect(b.broker.status().sinks.find((s) => s.name === "herald")).toBeDefined();

    // Trust mallory: within a reload interval she can submit and (on a fresh socket) subscribe.
    trustKey(mallory, join(dir, "trust"));
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await m.publish("org.misc.x", { i }).then(
        () => true,
        () => false,
      );
    }
    expect(ok).toBe(true);
    await linkUp(async () => (await a.publish("org.alice.probe", {})).id, seenByMallory);
  });

  it("keeps IPC and legacy-format PUB sockets plain; plain clients get nothing from TCP", async () => {
    const { b } = await curveBroker("b2", [alice]);
    const ipc = closer.client({ endpoint: b.ipc });
    const legacySub = closer.subscriber(b.pub.legacy, { format: "legacy" });
    const legacySeen = collect(legacySub).got;
    await linkUp(async () => (await ipc.publish("org.x.plain", {})).id, legacySeen);
    const plain = closer.client({ endpoint: b.tcp, timeoutMs: 300, retries: 0 });
    const err = await plain.publish("org.x.y", {}).catch((e: unknown) => e);
    // Told why at once (mechanism mismatch), not a TIMEOUT: see test/curve-mismatch.test.ts.
    expect((err as HeraldError).code).toBe("SECURITY");
    expect((err as HeraldError).message).toContain("requires CURVE");
  });

  it("refuses to start with a secret key file others can read", async () => {
    const dir = join(root, "b3");
    generateIdentity("b3", join(dir, "keys"));
    chmodSync(join(dir, "keys", "b3.key"), 0o640);
    const err = await startSecureBroker(dir, { security: { identity: "b3", curve: true } }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SecurityError);
    expect((err as Error).message).toContain("chmod 600");
  });

  it("ZAP handler death is fatal: the broker stops accepting and closes its CURVE sockets", async () => {
    const fatal: HeraldError[] = [];
    const { b, id: server } = await curveBroker(
      "b4",
      [alice],
      {},
      { extra: { onFatal: (e) => fatal.push(e) } },
    );
    const a = closer.client({ endpoint: b.ipc, retries: 0 });
    await a.publish("org.x.before", {});
    killZapForTest();
    expect(await waitFor(() => fatal.length > 0)).toBe(true);
    expect(fatal[0]?.code).toBe("SECURITY");
    expect(fatal[0]?.message).toContain("fail closed");
    expect(b.broker.status().accepting).toBe(false);
    const over = new HeraldClient({
      endpoint: b.tcp,
      timeoutMs: 300,
      retries: 0,
      curve: { identity: alice, serverKey: server.curvePublic },
    });
    closer.add(over);
    const err = await over.publish("org.x.after", {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HeraldError);
  });
});

describe("signatures across brokers", () => {
  it("a signed message forwarded over CURVE to a second broker verifies at the final subscriber", async () => {
    const hubDir = join(root, "hub");
    const edgeDir = join(root, "edge");
    const hubId = generateIdentity("hub", join(hubDir, "keys"));
    const edgeId = generateIdentity("edge", join(edgeDir, "keys"));
    for (const t of [alice, edgeId]) trustKey(t, join(hubDir, "trust"));
    trustKey(alice, join(edgeDir, "trust"));
    const hub = await startSecureBroker(
      hubDir,
      {
        security: {
          identity: "hub",
          curve: true,
          requireSignatures: true,
          policy: { alice: ["org.alice.#"] },
          forwarders: ["edge"],
        },
      },
      { name: "hub" },
    );
    running.push(hub);
    const edge = await startSecureBroker(
      edgeDir,
      {
        security: { identity: "edge", curve: true, requireSignatures: true },
        sinks: [{ name: "to-hub", type: "forward", endpoint: hub.tcp, serverKey: hubId.curvePublic }],
      },
      { name: "edge" },
    );
    running.push(edge);
    const trust = new TrustStore(join(hubDir, "trust"));
    trust.reload();
    const sub = closer.subscriber(hub.pub.herald, { curve: curveOf(alice, hubId), verify: { trust } });
    const { got } = collect(sub);
    const a = closer.client({ endpoint: edge.ipc, sign: alice });
    await linkUp(async () => (await a.publish("org.alice.probe", {})).id, got);
    const ack = await a.publish("org.alice.build.done", { build: 42 }, { headers: { "x-run": "1" } });
    expect(await waitFor(() => got.some((g) => g.id === ack.id))).toBe(true);
    expect(got.find((g) => g.id === ack.id)?.signer).toBe("alice");
    expect(sub.stats().rejected).toEqual({});
    // Unsigned at the edge: refused there, never forwarded.
    const unsigned = closer.client({ endpoint: edge.ipc, retries: 0 });
    const err = await unsigned.publish("org.alice.x", {}).catch((e: unknown) => e);
    expect((err as HeraldError).code).toBe("UNSIGNED");
    const signed = signMessage(createMessage({ topic: "org.alice.y", body: {} }), alice);
    expect((await unsigned.submit([signed]))[0]).not.toBeInstanceOf(HeraldError);
    expect(await waitFor(() => got.some((g) => g.id === signed.id))).toBe(true);
  });
});

describe("a client with the wrong server key", () => {
  it("times out with a hint at the server key, naming it when it is the client's own", async () => {
    const { b } = await curveBroker("wrongkey", [alice]);
    const own = closer.client({
      endpoint: b.tcp,
      retries: 0,
      timeoutMs: 300,
      curve: { identity: alice, serverKey: alice.curvePublic },
    });
    const err = (await own.publish("org.alice.x", {}).catch((e: unknown) => e)) as HeraldError;
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toContain("over CURVE a wrong server key looks the same");
    expect(err.message).toContain("alice's own key");
  });
});

describe("subscribe() with CURVE", () => {
  it("reads a broker's CURVE tcp:// and plain ipc:// herald sockets at once", async () => {
    const dir = join(root, "mixed");
    const server = generateIdentity("mixed", join(dir, "keys"));
    trustKey(alice, join(dir, "trust"));
    const [h, l] = await freePorts(2);
    const b = await startSecureBroker(
      dir,
      {
        security: { identity: "mixed", curve: true, reloadInterval: 100 },
        broker: {
          publish: [
            { name: "herald-ipc", endpoint: `ipc://${join(dir, "pub.sock")}`, format: "herald" },
            { name: "herald", endpoint: `tcp://127.0.0.1:${h}`, format: "herald" },
            { name: "legacy", endpoint: `tcp://127.0.0.1:${l}`, format: "legacy" },
          ],
        },
      },
      { name: "mixed" },
    );
    running.push(b);
    const asAlice = {
      ...b.config,
      security: {
        ...b.config.security,
        identity: "alice",
        keysDir: join(root, "client-keys"),
        serverKey: server.curvePublic,
      },
    };
    const sub = closer.add(subscribe(["#"], { config: asAlice }));
    const pub = closer.client({ endpoint: b.ipc });
    // Every message comes by both sockets: a duplicate shows that the second one delivers too.
    for (let i = 0; i < 50 && sub.stats().duplicates === 0; i++) {
      await pub.publish("org.mixed.probe", { i });
      await waitFor(() => sub.stats().duplicates > 0, 100);
    }
    expect(sub.stats().duplicates).toBeGreaterThan(0);
  });
});

describe("via counts only from forwarding brokers", () => {
  it("a trusted client cannot buy an ok without a store, nor replay past freshness, by adding via", async () => {
    const edge = generateIdentity("edge-v", join(root, "edge-v-keys"));
    const { b, id: server } = await curveBroker("hub-v", [alice, edge], {
      requireSignatures: true,
      forwarders: ["edge-v"],
    });
    const curve = (me: Identity) => ({ identity: me, serverKey: server.curvePublic });
    const asAlice = closer.client({ endpoint: b.tcp, curve: curve(alice), retries: 0 });
    const asEdge = closer.client({ endpoint: b.tcp, curve: curve(edge), retries: 0 });
    const overIpc = closer.client({ endpoint: b.ipc, retries: 0 });
    const fresh = (via: string[]) => ({
      ...signMessage(createMessage({ topic: "org.v.x", body: {} }), alice),
      via,
    });
    const old = new Date(Date.now() - 10 * 60_000).toISOString();
    const stale = (via: string[]) => ({
      ...signMessage(createMessage({ topic: "org.v.old", body: {}, sentAt: old }), alice),
      via,
    });
    const refused = async (client: HeraldClient, m: ReturnType<typeof fresh>) => {
      const [r] = await client.submit([m]);
      expect(r).toBeInstanceOf(SecurityError);
      expect((r as SecurityError).code).toBe("FORWARD_REFUSED");
      expect((r as SecurityError).retryable).toBe(true);
      return (r as SecurityError).message;
    };
    const stored = () => b.broker.status().outbox.headSeq;
    const before = stored();

    // alice names this broker in via: refused, not "ok" with nothing stored.
    expect(await refused(asAlice, fresh(["hub-v"]))).toContain("add 'alice' to security.forwarders");
    // alice replays a 10-minute-old signed message with a via: refused, not admitted past clockSkew.
    await refused(asAlice, stale(["elsewhere"]));
    // Over IPC nobody is authenticated, so via is refused there too when CURVE is on.
    expect(await refused(overIpc, fresh(["elsewhere"]))).toContain("unauthenticated submitter");
    expect(stored()).toBe(before);
    expect(b.broker.status().submit.loopsStopped).toBe(0);

    // The forwarding broker edge-v: its old message waited in an outbox, so it is admitted and stored...
    const [late] = await asEdge.submit([stale(["elsewhere"])]);
    expect(late).not.toBeInstanceOf(HeraldError);
    expect(stored()).toBe(before + 1);
    // ...and a message that comes back around is the loop stop: ok, stored once only.
    const [loop] = await asEdge.submit([fresh(["hub-v"])]);
    expect(loop).toMatchObject({ seq: 0, duplicate: true });
    expect(b.broker.status().submit.loopsStopped).toBe(1);
    expect(stored()).toBe(before + 1);
    // Without via, alice's messages are as before.
    const [plain] = await asAlice.submit([fresh([])]);
    expect(plain).not.toBeInstanceOf(HeraldError);
  });

  it("a broker not in security.forwarders is refused, retryably: its forward sink holds the messages", async () => {
    const edge = generateIdentity("edge-n", join(root, "edge-n-keys"));
    const { b, id: server } = await curveBroker("hub-n", [edge]);
    const sink = new ForwardTransport({
      name: "to-hub",
      endpoint: b.tcp,
      brokerName: "edge-n",
      curve: { identity: edge, serverKey: server.curvePublic },
    });
    closer.add(sink);
    const err = await sink.send([createMessage({ topic: "org.n.x", body: {} })]).catch((e: unknown) => e);
    // Thrown (so the dispatcher keeps its cursor and retries), not counted as a permanent rejection.
    expect((err as HeraldError).code).toBe("FORWARD_REFUSED");
    expect((err as HeraldError).message).toContain("add 'edge-n' to security.forwarders");
    expect(sink.health().state).toBe("down");
    expect(sink.health().lastError).toContain("is not a forwarding broker here");
    expect(b.broker.status().outbox.headSeq).toBe(0);
  });

  it("security.forwarders without CURVE is a configuration error naming the fix", async () => {
    const err = await startSecureBroker(join(root, "fwd-plain"), {
      security: { forwarders: ["edge"] },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain("set security.curve: true");
  });
});
