/**
 * ZeroMQ transport behaviour beyond the shared contract: the high-water-mark policy (a subscriber that
 * never reads must not block the broker), XPUB subscription evidence, CURVE, and error translation.
 */
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { type HeraldError, SecurityError, TransportError } from "../src/errors.js";
import type { Transport } from "../src/transport/types.js";
import { quietLogger } from "../src/transport/zeromq-common.js";
import { type SubscriptionEvent, ZmqPublishTransport } from "../src/transport/zeromq-pub.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { encodeStampedFrames } from "../src/wire/herald.js";
import { encodeLegacyFrames } from "../src/wire/legacy.js";
import { Collector, flush, linkUp, msg, rootWord } from "./contract/transport-contract.js";

const opened: Transport[] = [];
const sockets: zmq.Socket[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  for (const t of opened.splice(0)) await t.close();
});

function track<T extends Transport>(t: T): T {
  opened.push(t);
  return t;
}

async function publisher(extra: Partial<ConstructorParameters<typeof ZmqPublishTransport>[0]> = {}) {
  const pub = track(
    new ZmqPublishTransport({
      name: "pub",
      endpoint: "tcp://127.0.0.1:*",
      format: "herald",
      linger: 0,
      ...extra,
    }),
  );
  await pub.open();
  return pub;
}

function subscriber(
  endpoint: string,
  extra: Partial<ConstructorParameters<typeof ZmqSubscribeTransport>[0]> = {},
) {
  return track(
    new ZmqSubscribeTransport({
      name: "sub",
      endpoints: [endpoint],
      format: "herald",
      logger: quietLogger,
      ...extra,
    }),
  );
}

async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("frames on the wire", () => {
  it.each(["herald", "legacy"] as const)(
    "%s: the text frames are byte for byte the encoder's, and the byte counter counts UTF-8",
    async (format) => {
      const pub = await publisher({ format });
      const sub = new zmq.Subscriber({ linger: 0 });
      sockets.push(sub);
      sub.connect(pub.lastEndpoint!);
      sub.subscribe("org.example");
      const probe = msg("org.example.probe", {});
      let first: Buffer[] | undefined;
      const reading = (async () => {
        for await (const frames of sub) {
          if (frames[0]!.toString() === "org.example.wire") return frames;
          first ??= frames;
        }
        return undefined;
      })();
      await until(() => {
        void pub.send([probe]);
        return first !== undefined;
      }, "the subscription");
      await pub.send([probe]); // sends are written in order: every earlier probe is counted by now
      const before = pub.health().counters["bytes"] ?? 0;
      const m = msg("org.example.wire", { text: "naïve café — 漢字 🚀", n: 1 });
      await pub.send([m]);
      const got = (await reading)!;
      const env = JSON.parse(got[1]!.toString()) as { seq?: number; stream?: string; i?: number };
      const expected =
        format === "legacy" ? encodeLegacyFrames(m, env.i!) : encodeStampedFrames(m, env.seq!, env.stream!);
      expect(got[0]!.equals(expected[0])).toBe(true);
      expect(got[1]!.equals(expected[1])).toBe(true);
      expect((pub.health().counters["bytes"] ?? 0) - before).toBe(got[0]!.length + got[1]!.length);
    },
  );
});

describe("high-water mark", () => {
  it("a subscriber that never reads does not block send; a reading subscriber gets everything sent later", async () => {
    const pub = await publisher({ sendHighWaterMark: 1000 });
    const ep = pub.lastEndpoint!;
    const stuck = new zmq.Subscriber({ linger: 0, receiveHighWaterMark: 100 });
    sockets.push(stuck);
    stuck.subscribe("");
    stuck.connect(ep); // and never receive()
    const root = rootWord();
    const fast = subscriber(ep);
    const col = new Collector(fast.receive({ patterns: [`${root}.#`] }));
    await until(() => pub.subscribers().connected === 2, "both subscribers to connect");
    await linkUp(pub, root, [col]);

    const body = { pad: "x".repeat(1024) };
    for (let b = 0; b < 50; b++)
      await pub.send(
        Array.from({ length: 1000 }, (_, k) => msg(`${root}.flood`, { ...body, n: b * 1000 + k })),
      );
    expect(pub.health().sent).toBeGreaterThanOrEqual(50_000);

    // The reader may have lost some of the flood at its own HWM; what is sent once it caught up arrives.
    await linkUp(pub, root, [col]);
    await pub.send(Array.from({ length: 100 }, (_, n) => msg(`${root}.after`, { n })));
    await flush(pub, root, [col]);
    const after = col.items
      .filter((d) => d.message.topic === `${root}.after`)
      .map((d) => d.message.body["n"]);
    expect(after).toEqual(Array.from({ length: 100 }, (_, n) => n));
  });
});

describe("XPUB subscription evidence", () => {
  it("reports subscribes, unsubscribes on disconnect, connection counts and a stream of events", async () => {
    const pub = await publisher({ format: "legacy", xpub: true });
    const stream = pub.subscriptionEvents();
    const seen: SubscriptionEvent[] = [];
    const reading = (async () => {
      for await (const e of stream) seen.push(e);
    })();
    const peers: number[] = [];
    pub.onPeer((e) => peers.push(e.type === "accept" ? 1 : -1));

    const sub = subscriber(pub.lastEndpoint!, { format: "legacy" });
    const s = sub.receive({ patterns: ["org.fedoraproject.prod.bodhi.#", "org.fedoraproject.*.koji.build"] });
    await until(() => pub.subscribers().prefixes.length === 2, "two prefixes");
    expect(pub.subscribers()).toMatchObject({
      connected: 1,
      prefixes: ["org.fedoraproject.", "org.fedoraproject.prod.bodhi"],
    });
    expect(pub.subscribers().lastSeenAt).toBeGreaterThan(0);

    await s.close();
    await until(() => pub.subscribers().connected === 0, "the disconnect");
    expect(pub.subscribers().prefixes).toEqual([]);
    await until(() => seen.filter((e) => !e.subscribe).length === 2, "two unsubscribes");
    expect(
      seen
        .filter((e) => e.subscribe)
        .map((e) => e.prefix)
        .sort(),
    ).toEqual(["org.fedoraproject.", "org.fedoraproject.prod.bodhi"]);
    expect(peers).toEqual([1, -1]);
    expect(pub.health().counters).toMatchObject({
      subscribes: 2,
      unsubscribes: 2,
      accepted: 1,
      disconnected: 1,
    });
    stream.close();
    await reading;
  });
});

describe("CURVE", () => {
  it("a subscriber with the server's public key receives; the socket reports curve", async () => {
    const server = zmq.curveKeyPair();
    const client = zmq.curveKeyPair();
    const pub = await publisher({ curve: { secretKey: server.secretKey, publicKey: server.publicKey } });
    const sub = subscriber(pub.lastEndpoint!, {
      curve: { serverKey: server.publicKey, publicKey: client.publicKey, secretKey: client.secretKey },
    });
    const root = rootWord();
    const col = new Collector(sub.receive({ patterns: [`${root}.#`] }));
    await linkUp(pub, root, [col]);
    await pub.send([msg(`${root}.secret`, { s: "🔒" })]);
    await flush(pub, root, [col]);
    expect(col.payload().map((d) => d.message.body["s"])).toEqual(["🔒"]);
  });

  it("rejects a malformed key with a SecurityError naming the fix", async () => {
    const pub = track(
      new ZmqPublishTransport({
        name: "pub",
        endpoint: "tcp://127.0.0.1:*",
        format: "herald",
        curve: { secretKey: "short", publicKey: "short" },
      }),
    );
    const err = await pub.open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SecurityError);
    expect((err as Error).message).toMatch(/Z85/);
  });
});

describe("errors", () => {
  it("translates EADDRINUSE into a TransportError that names the config key", async () => {
    const first = await publisher();
    const second = track(
      new ZmqPublishTransport({ name: "legacy", endpoint: first.lastEndpoint!, format: "legacy", linger: 0 }),
    );
    const err = await second.open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as HeraldError).message).toContain(`address ${first.lastEndpoint} is in use`);
    expect((err as HeraldError).message).toContain("broker.publish[n].endpoint");
    expect(second.health().lastError).toContain("in use");
    // The shim's socket for a legacy service's old port: broker.publish has nothing to do with it.
    const shim = track(
      new ZmqPublishTransport({
        name: "shim-koji.x",
        endpoint: first.lastEndpoint!,
        format: "legacy",
        linger: 0,
      }),
    );
    const shimErr = String(((await shim.open().catch((e: unknown) => e)) as Error).message);
    expect(shimErr).toMatch(/is in use: .*the old app or fedmsg-relay still running\?/);
    expect(shimErr).not.toContain("broker.publish");
    // A failed open can be retried once the address is free (libzmq releases it asynchronously).
    await first.close();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await second.open().then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error("the address was never released");
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(second.health().state).toBe("up");
  });

  it("rejects a bad endpoint scheme with a TransportError", async () => {
    const pub = track(
      new ZmqPublishTransport({ name: "p", endpoint: "udp://127.0.0.1:1", format: "herald" }),
    );
    await expect(pub.open()).rejects.toThrow(/not a usable ZeroMQ address/);
    const sub = subscriber("bogus://nowhere");
    expect(() => sub.receive({ patterns: ["#"] })).toThrow(TransportError);
  });

  it("send on the subscriber and receive on the publisher are UNSUPPORTED", async () => {
    const pub = await publisher();
    const sub = subscriber(pub.lastEndpoint!);
    const e1 = await sub.send([msg("a.b", {})]).catch((e: unknown) => e);
    expect((e1 as HeraldError).code).toBe("UNSUPPORTED");
    let e2: unknown;
    try {
      pub.receive({ patterns: ["#"] });
    } catch (e) {
      e2 = e;
    }
    expect((e2 as HeraldError).code).toBe("UNSUPPORTED");
  });

  it("stamps seq from 1 and a new stream id on each publisher run", async () => {
    const pub = await publisher({ brokerName: "b1", name: "herald", xpub: true });
    expect(pub.stream).toMatch(/^b1\/herald\/\S+$/);
    const sub = subscriber(pub.lastEndpoint!);
    const root = rootWord();
    const col = new Collector(sub.receive({ patterns: [`${root}.#`] }));
    await until(() => pub.subscribers().prefixes.includes(root), "the subscription");
    await pub.send([msg(`${root}.one`, {}), msg(`${root}.two`, {})]);
    await col.waitFor(() => col.items.length === 2, "two messages");
    expect(col.items.map((d) => d.message.seq)).toEqual([1, 2]);
    expect(col.items.map((d) => d.message.stream)).toEqual([pub.stream, pub.stream]);
    const other = await publisher({ brokerName: "b1", name: "herald" });
    expect(other.stream).not.toBe(pub.stream);
  });
});
