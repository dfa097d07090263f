/**
 * ZeroMQ transports against Python peers that reproduce fedmsg's wire behaviour (test/peers/*.py):
 * byte-exact legacy frames both ways, and malformed frames that must be counted, not fatal.
 */
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import type { Transport } from "../src/transport/types.js";
import { quietLogger } from "../src/transport/zeromq-common.js";
import { decodeFrames } from "../src/transport/zeromq-decode.js";
import { ZmqPublishTransport } from "../src/transport/zeromq-pub.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { encodeHeraldFrames } from "../src/wire/herald.js";
import { encodeLegacyFrames, LEGACY_HEADER } from "../src/wire/legacy.js";
import type { Message } from "../src/wire/message.js";
import { Collector, msg } from "./contract/transport-contract.js";
import { type PeerLine, PythonPeer } from "./peers/python-peer.js";

const opened: Transport[] = [];
const peers: PythonPeer[] = [];

afterEach(async () => {
  for (const t of opened.splice(0)) await t.close();
  for (const p of peers.splice(0)) await p.stop();
});

function track<T extends Transport>(t: T): T {
  opened.push(t);
  return t;
}

function peer(script: string, args: string[]): PythonPeer {
  const p = PythonPeer.start(script, args);
  peers.push(p);
  return p;
}

const b64 = (s: unknown): Buffer => Buffer.from(String(s), "base64");

describe("legacy PUB -> Python fedmsg subscriber", () => {
  it("delivers exactly the bytes encodeLegacyFrames produced, with fedmsg's i counter", async () => {
    const pub = track(
      new ZmqPublishTransport({
        name: "legacy",
        endpoint: "tcp://127.0.0.1:*",
        format: "legacy",
        xpub: true,
        linger: 0,
      }),
    );
    await pub.open();
    const subscribed = new Promise<void>((resolve) =>
      pub.onSubscription((e) => {
        if (e.subscribe && e.prefix === "org.fedoraproject.") resolve();
      }),
    );
    const end = "org.fedoraproject.dev.herald.end";
    const py = peer("fedmsg_sub.py", [
      "--connect",
      pub.lastEndpoint!,
      "--subscribe",
      "org.fedoraproject.",
      "--until-topic",
      end,
      "--timeout",
      "30",
    ]);
    await subscribed;
    expect(pub.subscribers().prefixes).toContain("org.fedoraproject.");

    const sent: Message[] = [
      msg("org.fedoraproject.dev.herald.plain", { n: 1 }),
      msg("org.fedoraproject.dev.herald.unicode", {
        text: "héllo ✓ 日本 🎉",
        nested: { a: [1, 2.5, null, true] },
      }),
      // A message that came in from a fedmsg publisher keeps its envelope (i, float timestamp, signature).
      msg(
        "org.fedoraproject.prod.bodhi.update.comment",
        { comment: { text: "LGTM", karma: 1 } },
        {
          id: "2024-6f1c7b0e-2f55-4a8e-9a39-2f7c7d1b9e11",
          headers: {
            [LEGACY_HEADER.i]: 77,
            [LEGACY_HEADER.timestamp]: 1700000000.5,
            [LEGACY_HEADER.username]: "apache",
            [LEGACY_HEADER.crypto]: "x509",
            [LEGACY_HEADER.signature]: "c2lnbmF0dXJl",
            [LEGACY_HEADER.certificate]: "Y2VydA==",
          },
        },
      ),
      msg("org.fedoraproject.dev.herald.last", { n: 4 }),
    ];
    await pub.send(sent);
    await pub.send([msg(end, { end: true })]);
    await py.waitFor((l) => l.event === "done", "the python subscriber to finish");
    const got = py.events("message");
    expect(got.map((l) => l["topic"])).toEqual([...sent.map((m) => m.topic), end]);
    sent.forEach((m, k) => {
      const line = got[k]!;
      expect(line["frames"]).toBe(2);
      expect(b64(line["raw"]).equals(encodeLegacyFrames(m, k + 1)[1])).toBe(true);
    });
    const env = (k: number) => got[k]!["envelope"] as Record<string, unknown>;
    expect(env(0)["i"]).toBe(1);
    expect(env(0)["msg_id"]).toBe(`${new Date(sent[0]!.sentAt).getUTCFullYear()}-${sent[0]!.id}`);
    expect(env(1)["msg"]).toEqual(sent[1]!.body);
    expect(env(2)).toMatchObject({ i: 77, timestamp: 1700000000.5, username: "apache", msg_id: sent[2]!.id });
  });
});

describe("Python fedmsg publishers -> SUB transport", () => {
  it("reads passive publishers on two endpoints, attributes each message to its endpoint, re-encodes byte for byte", async () => {
    const py = peer("fedmsg_pub.py", [
      ...["--bind", "tcp://127.0.0.1:*", "--bind", "tcp://127.0.0.1:*"],
      ...["--count", "20", "--wait-subscribers", "1", "--hold"],
      ...["--topic", "org.fedoraproject.dev.bodhi.update.comment", "--username", "bodhi"],
    ]);
    const bound = await py.waitFor((l) => l.event === "bound", "bound endpoints");
    const endpoints = bound["endpoints"] as string[];
    expect(endpoints).toHaveLength(2);
    const sub = track(
      new ZmqSubscribeTransport({
        name: "legacy-in",
        endpoints,
        format: "legacy",
        legacyDefaults: (ep) => ({ host: `app0${endpoints.indexOf(ep) + 1}`, app: "bodhi" }),
        logger: quietLogger,
      }),
    );
    const col = new Collector(sub.receive({ patterns: ["org.fedoraproject.#"] }));
    await py.waitFor((l) => l.event === "done", "the publisher to finish");
    await col.waitFor(() => col.items.length === 40, "40 messages");

    const byId = new Map<string, PeerLine>(py.events("sent").map((l) => [String(l["msg_id"]), l]));
    for (const d of col.items) {
      const line = byId.get(d.message.id);
      expect(line).toBeDefined();
      expect(d.via).toBe(line!["endpoint"]);
      expect(d.format).toBe("legacy");
      expect(d.raw!.equals(b64(line!["raw"]))).toBe(true);
      expect(d.message.origin).toMatchObject({
        host: `app0${endpoints.indexOf(d.via) + 1}`,
        app: "bodhi",
        user: "bodhi",
      });
      expect(d.message.headers[LEGACY_HEADER.i]).toBe(line!["i"]);
      // Ingested fedmsg messages are re-emitted byte for byte (the envelope keeps its own i).
      expect(encodeLegacyFrames(d.message, 999)[1].equals(d.raw!)).toBe(true);
    }
    for (const ep of endpoints) {
      const is = col.items.filter((d) => d.via === ep).map((d) => d.message.headers[LEGACY_HEADER.i]);
      expect(is).toEqual(Array.from({ length: 20 }, (_, k) => k + 1));
    }
    expect(sub.health().received).toBe(40);
  });

  it("active mode: a fedmsg PUB connecting to a bound SUB (relay_inbound) is decoded", async () => {
    // The shim's relay_inbound is a bound SUB; this checks the peer's --connect mode and the decoding.
    const relay = new zmq.Subscriber({ linger: 0 });
    relay.subscribe("");
    await relay.bind("tcp://127.0.0.1:*");
    try {
      const ep = relay.lastEndpoint!;
      peer("fedmsg_pub.py", ["--connect", ep, "--count", "3", "--wait-subscribers", "1", "--hold"]);
      const got = [];
      for (let k = 0; k < 3; k++) {
        const decoded = decodeFrames(await relay.receive(), "auto", {
          maxBytes: 1 << 20,
          legacyDefaults: {},
        });
        if ("problem" in decoded) throw new Error(decoded.problem);
        got.push(decoded);
      }
      expect(got.map((d) => d.format)).toEqual(["legacy", "legacy", "legacy"]);
      expect(got.map((d) => d.message.body["n"])).toEqual([0, 1, 2]);
      expect(got.map((d) => d.message.headers[LEGACY_HEADER.i])).toEqual([1, 2, 3]);
    } finally {
      relay.close();
    }
  });

  it("counts malformed frames from a raw publisher and keeps delivering the good ones", async () => {
    const py = peer("fedmsg_pub.py", [
      "--bind",
      "tcp://127.0.0.1:*",
      "--raw-stdin",
      "--wait-subscribers",
      "1",
      "--hold",
    ]);
    const bound = await py.waitFor((l) => l.event === "bound", "bound endpoints");
    const sub = track(
      new ZmqSubscribeTransport({
        name: "auto-in",
        endpoints: bound["endpoints"] as string[],
        format: "auto",
        logger: quietLogger,
      }),
    );
    const col = new Collector(sub.receive({ patterns: ["#"] }));
    await py.waitFor((l) => l.event === "subscribed", "our subscription to reach the publisher");

    const t = "org.fedoraproject.dev.peer.bad";
    const fedmsg = (o: Record<string, unknown>) =>
      JSON.stringify({ topic: t, msg: {}, msg_id: "2024-x", timestamp: 1, ...o });
    const bad: (string | Buffer)[][] = [
      [t],
      [t, "{}", "third"],
      [t, "{not json"],
      [t, "[1,2,3]"],
      [t, JSON.stringify({ v: 1, sent_at: "2024-01-01T00:00:00Z", topic: t })],
      [t, JSON.stringify({ topic: t, msg: {}, msg_id: "2024-x" })],
      ["org.fedoraproject.dev.peer.other", fedmsg({})],
      [t, Buffer.from([0xff, 0xfe, 0x00])],
    ];
    const good = msg("org.fedoraproject.dev.peer.good", { ok: true });
    const frames = [
      ...bad,
      [t, fedmsg({ i: 1, username: "u" })],
      encodeHeraldFrames({ ...good, seq: 1, stream: "s" }),
    ];
    for (const f of frames)
      py.write(JSON.stringify({ frames: f.map((x) => Buffer.from(x).toString("base64")) }));
    py.endInput();
    await col.waitFor(() => col.items.length === 2, "the two good messages");
    expect(col.items.map((d) => d.format)).toEqual(["legacy", "herald"]);
    expect(col.items[1]!.message.id).toBe(good.id);
    await expect.poll(() => sub.health().counters["malformed"]).toBe(bad.length);
    expect(col.error).toBeUndefined();
    expect(sub.health().received).toBe(2);
  });
});
