import { afterEach, describe, expect, it } from "vitest";
import type { Broker, SubmitPeer } from "../src/broker/broker.js";
import { LOCAL_PEER, LocalSubmitter } from "../src/broker/local-submit.js";
import { storedMessage } from "../src/broker/submit-server.js";
import type { Ack } from "../src/client/publisher.js";
import { HeraldError, MessageRejectedError, SecurityError } from "../src/errors.js";
import type { JsonObject } from "../src/wire/json.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { collectIds, startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

const msg = (topic: string, body: JsonObject = {}): Message => createMessage({ topic, body });

describe("LocalSubmitter (in-process submits: the in-broker shim, source ingest)", () => {
  it("is retryable NO_BROKER until the broker is there, and retryable SHUTTING_DOWN once it stops", async () => {
    let broker: Broker | undefined;
    const local = new LocalSubmitter(() => broker);
    const before = await local.submit([msg("org.test.a")]).catch((e: unknown) => e);
    expect(before).toBeInstanceOf(HeraldError);
    expect(before).toMatchObject({ code: "NO_BROKER", retryable: true });

    tb = await startTestBroker();
    broker = tb.broker;
    await tb.broker.stop();
    const [after] = await local.submit([msg("org.test.a")]);
    expect(after).toBeInstanceOf(HeraldError);
    expect(after).toMatchObject({ code: "SHUTTING_DOWN", retryable: true });
  });

  it("stores, acknowledges and publishes like the submit socket: defaults, canonical body, dedup, per-message errors", async () => {
    tb = await startTestBroker();
    const local = new LocalSubmitter(() => tb?.broker);
    const sub = tb.subscriber(["herald"]);
    const got = collectIds(sub);
    // The subscriber's link is up before the measured messages (ZeroMQ's slow joiner).
    for (let i = 0; i < 50 && got.ids.length === 0; i++) {
      await local.submit([msg("org.test.probe")]);
      await waitFor(() => got.ids.length > 0, 100);
    }

    const ok = msg("org.test.ok", { z: 1, a: { y: 2, b: 3 } });
    const badTopic = { ...msg("org.test.x"), topic: "not a topic" };
    const tooBig = { ...msg("org.test.big"), body: { s: "x".repeat(2 << 20) } };
    // Legacy envelope fields no fedmsg envelope can hold: acknowledged, it would stall the legacy sinks.
    const badExtra = { ...msg("org.test.extra"), headers: { "fedmsg.extra": "notjson" } };
    const results = await local.submit([ok, badTopic, tooBig, badExtra]);
    const ack = results[0] as Ack;
    expect(ack).toMatchObject({ id: ok.id, duplicate: false });
    expect(ack.seq).toBeGreaterThan(0);
    expect(results[1]).toBeInstanceOf(MessageRejectedError);
    expect(results[1]).toMatchObject({ code: "BAD_TOPIC", retryable: false });
    expect(results[2]).toMatchObject({ code: "TOO_LARGE", retryable: false });
    expect(results[3]).toMatchObject({ code: "INVALID", retryable: false });

    const [again] = await local.submit([ok]);
    expect(again).toMatchObject({ id: ok.id, seq: ack.seq, duplicate: true });
    expect(await waitFor(() => got.ids.includes(ok.id))).toBe(true);
    expect(got.ids.filter((id) => id === ok.id)).toHaveLength(1);
    expect(got.ids).not.toContain(badTopic.id);

    const status = await tb.client().status();
    expect(status).toMatchObject({ outbox: { headSeq: ack.seq } });
  });

  it("stores what the submit socket would: defaults filled in, the body in canonical order", () => {
    const input = { id: "id-1", topic: "org.test.a", body: { z: 1, a: { y: 2, b: 3 } } };
    const stored = storedMessage(input, 1 << 20);
    expect(stored).toMatchObject({ id: "id-1", schema: "base.message", schemaVersion: 1, headers: {} });
    expect(Object.keys(stored.body)).toEqual(["a", "z"]);
    expect(Object.keys(stored.body["a"] as object)).toEqual(["b", "y"]);
    expect(() => storedMessage({ ...input, topic: "" }, 1 << 20)).toThrow(MessageRejectedError);
  });

  it("goes through the broker's admission checks as a peer without a CURVE identity", async () => {
    const peers: SubmitPeer[] = [];
    tb = await startTestBroker({
      admission: [
        (m, peer) => {
          peers.push(peer);
          return m.topic.startsWith("org.secret.")
            ? new SecurityError("UNAUTHORIZED_TOPIC", `not allowed: ${m.topic}`)
            : undefined;
        },
      ],
    });
    const local = new LocalSubmitter(() => tb?.broker);
    const [secret, open] = await local.submit([msg("org.secret.a"), msg("org.open.a")]);
    expect(secret).toBeInstanceOf(SecurityError);
    expect(secret).toMatchObject({ code: "UNAUTHORIZED_TOPIC" });
    expect(open).toMatchObject({ duplicate: false });
    expect(peers).toEqual([LOCAL_PEER, LOCAL_PEER]);
    expect(LOCAL_PEER.endpoint.startsWith("tcp://")).toBe(false);
  });
});
