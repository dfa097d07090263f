import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { storedMessage } from "../src/broker/submit-server.js";
import { MessageRejectedError } from "../src/errors.js";
import { BridgedService } from "../src/shim/bridged.js";
import { decodeFrames } from "../src/transport/zeromq-decode.js";
import { ZmqPublishTransport } from "../src/transport/zeromq-pub.js";
import { silentLogger } from "../src/util/log.js";
import { fedoraMessagingHeaders } from "../src/wire/fedora-messaging.js";
import { createMessage, type Message, validateMessage } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";

// A message the broker acknowledges must be one every sink can carry, or the sink's cursor would stop at
// it for good (and, through it, the outbox fill up): what cannot be carried is refused at the door, and a
// sink that still cannot encode one says so with a MessageRejectedError the dispatcher passes over.

// amqplib's own header table encoder (not public API): the test checks the submit limit against it.
const requireCjs = createRequire(import.meta.url);
const amqplibDir = dirname(requireCjs.resolve("amqplib"));
const { encodeTable } = requireCjs(join(amqplibDir, "lib", "codec.js")) as {
  encodeTable: (buf: Buffer, val: unknown, offset: number) => number;
};

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function nested(depth: number): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  let cur = root;
  for (let i = 0; i < depth; i++) {
    const next: Record<string, unknown> = {};
    cur["a"] = next;
    cur = next;
  }
  return root;
}

const withExtra = (extra: unknown): Message => ({
  ...createMessage({ topic: "org.test.extra", body: {} }),
  headers: { "fedmsg.extra": extra as string },
});

describe("messages no legacy envelope can hold", () => {
  it("are refused at submit when their fedmsg.extra header is not an encodable JSON object", () => {
    for (const extra of ["notjson", "[1,2]", "3", JSON.stringify({ x: nested(300) })]) {
      expect(() => validateMessage(withExtra(extra)), extra.slice(0, 20)).toThrow(MessageRejectedError);
    }
    expect(() => validateMessage(withExtra(JSON.stringify({ x: [1, { y: "z" }] })))).not.toThrow();
  });

  it("are refused when a legacy publisher sends them (unknown top-level fields nested too deep)", () => {
    const envelope = JSON.stringify({
      topic: "org.example.dev.app.x",
      msg: {},
      msg_id: "2026-abc",
      timestamp: 1_700_000_000,
      i: 1,
      username: "u",
      x: nested(300),
    });
    const d = decodeFrames([Buffer.from("org.example.dev.app.x"), Buffer.from(envelope)], "legacy", {
      maxBytes: 1 << 20,
      legacyDefaults: {},
    });
    expect("problem" in d && d.problem).toMatch(/fedmsg\.extra/);
  });

  it("are refused at submit when amqplib could not write their headers; what passes, amqplib writes", () => {
    // As the submit socket calls it: with the size of the (small) JSON the message was parsed from.
    const submit = (headers: Record<string, string | number>) =>
      storedMessage({ id: `h-${Math.random()}`, topic: "org.test.h", body: {}, headers }, 1 << 20, 600);
    const refusal = (headers: Record<string, string | number>) => {
      try {
        submit(headers);
      } catch (err) {
        return err as MessageRejectedError;
      }
      return undefined;
    };
    // Names: herald headers get the prefix herald_h_ (9 bytes), users become fedora_messaging_user_<name>.
    expect(refusal({ ["k".repeat(246)]: 1 })).toBeUndefined();
    expect(refusal({ ["k".repeat(247)]: 1 })).toMatchObject({ code: "INVALID" });
    expect(refusal({ users: `alice,${"u".repeat(240)}` })?.message).toContain("fedora_messaging_user_");
    // Size: many small headers, and one long value.
    const many = Object.fromEntries(Array.from({ length: 4000 }, (_, i) => [`h${i}`, i]));
    expect(refusal(many)).toMatchObject({ code: "TOO_LARGE" });
    expect(refusal({ note: "x".repeat(70_000) })).toMatchObject({ code: "TOO_LARGE" });
    // What passes at the edge encodes with amqplib's own table encoder into its 64 KiB buffer.
    const names = Array.from({ length: 1500 }, (_, i) => `n${i}`).join(",");
    const near: Array<Record<string, string | number>> = [
      { note: "x".repeat(60_000) },
      { users: names },
      Object.fromEntries(Object.entries(many).slice(0, 2200)),
    ];
    // The quick test that skips the exact count, at its worst: 63 names of 60 three-byte characters,
    // and a users list of 70 characters of one-letter names.
    const widest: Record<string, string | number> = Object.fromEntries(
      Array.from({ length: 63 }, (_, i) => [`${"€".repeat(57)}${String(i).padStart(3, "0")}`, i]),
    );
    widest["users"] = Array.from({ length: 35 }, (_, i) => String.fromCharCode(0x4e00 + i)).join(",");
    near.push(widest);
    for (const headers of near) {
      const msg = submit(headers);
      expect(() => encodeTable(Buffer.alloc(65536), fedoraMessagingHeaders(msg), 0)).not.toThrow();
    }
  });

  it("make a legacy PUB refuse the batch with MessageRejectedError, counted, and go on with the next", async () => {
    const pub = new ZmqPublishTransport({
      name: "legacy",
      endpoint: "tcp://127.0.0.1:*",
      format: "legacy",
      brokerName: "t",
    });
    cleanups.push(() => pub.close());
    await pub.open();
    const sub = new zmq.Subscriber({ linger: 0 });
    sub.subscribe();
    sub.connect(pub.lastEndpoint!);
    cleanups.push(() => sub.close());
    const got: Array<Record<string, unknown>> = [];
    void (async () => {
      for await (const [, envelope] of sub) got.push(JSON.parse(String(envelope)) as Record<string, unknown>);
    })().catch(() => {});
    // The link is up (ZeroMQ's slow joiner) before the batches that count.
    const probe = createMessage({ topic: "org.test.probe", body: {} });
    let sent = 0;
    while (got.length === 0 && sent < 50) {
      await pub.send([probe]);
      sent++;
      await waitFor(() => got.length > 0, 100);
    }
    const good = createMessage({ topic: "org.test.good", body: {} });
    const err = await pub.send([good, withExtra("notjson")]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MessageRejectedError);
    expect(err).toMatchObject({ code: "INVALID" });
    expect(String((err as Error).message)).toContain("cannot be encoded in the legacy format");
    expect(pub.health().counters["unencodable"]).toBe(1);
    // Nothing of the refused batch went out; the next batch does, its `i` numbering unbroken.
    await pub.send([good]);
    expect(await waitFor(() => got.some((e) => e["topic"] === "org.test.good"), 5000)).toBe(true);
    expect(got.filter((e) => e["topic"] === "org.test.good")).toEqual([
      expect.objectContaining({ i: sent + 1 }),
    ]);
  });

  it("cost only themselves on a bridged service's old port, not the batch they came in", async () => {
    const [port] = await freePorts(1);
    const endpoint = `tcp://127.0.0.1:${port}`;
    const bridged = new BridgedService({
      service: "app.test",
      endpoints: [endpoint],
      brokerName: "t",
      log: silentLogger,
      settleMs: 100,
    });
    cleanups.push(() => bridged.close());
    const sub = new zmq.Subscriber({ linger: 0 });
    sub.subscribe();
    sub.connect(endpoint);
    cleanups.push(() => sub.close());
    const topics: string[] = [];
    void (async () => {
      for await (const [topic] of sub) topics.push(String(topic));
    })().catch(() => {});
    for (let i = 0; i < 100 && topics.length === 0; i++) {
      bridged.publish([{ message: createMessage({ topic: "org.test.probe", body: { i } }) }]);
      await waitFor(() => topics.length > 0, 100);
    }
    const batch = [
      createMessage({ topic: "org.test.one", body: {} }),
      withExtra("notjson"),
      createMessage({ topic: "org.test.three", body: {} }),
    ];
    bridged.publish(batch.map((message) => ({ message })));
    await bridged.flushed();
    expect(await waitFor(() => topics.includes("org.test.three"), 5000)).toBe(true);
    expect(topics.filter((t) => !t.endsWith("probe"))).toEqual(["org.test.one", "org.test.three"]);
    expect(bridged.sendErrors).toBe(1);
  });
});
