/**
 * The fedmsg.* headers that let an ingested legacy message be re-emitted byte for byte can be set by any
 * submitter. They must not make the legacy form say something the message does not: fedmsg consumers and
 * datagrepper read topic and msg_id from the envelope, while the topic policy saw only msg.topic.
 */
import { describe, expect, it } from "vitest";
import { MessageRejectedError } from "../src/errors.js";
import { decodeLegacyEnvelope, encodeLegacyFrames, LEGACY_HEADER } from "../src/wire/legacy.js";
import { createMessage, type Message } from "../src/wire/message.js";

const TOPIC = "org.example.alice.harmless";
const legacyOf = (m: Message) =>
  JSON.parse(encodeLegacyFrames(m, 1)[1].toString("utf8")) as Record<string, unknown>;

describe("fedmsg.extra", () => {
  it.each(["topic", "msg", "msg_id", "timestamp", "__proto__"])(
    "may not set %s: refused at admission",
    (field) => {
      const extra = `{"${field}":{"forged":true},"source_name":"x"}`;
      let err: unknown;
      try {
        createMessage({ topic: TOPIC, body: { ok: 1 }, headers: { [LEGACY_HEADER.extra]: extra } });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(MessageRejectedError);
      expect((err as Error).message).toContain(`may not set '${field}'`);
    },
  );

  it("still carries the unknown fields an ingested envelope had", () => {
    const m = createMessage({
      topic: TOPIC,
      body: { ok: 1 },
      headers: { [LEGACY_HEADER.extra]: '{"source_name":"bodhi","source_version":"5.1"}' },
    });
    expect(legacyOf(m)).toMatchObject({ source_name: "bodhi", source_version: "5.1", topic: TOPIC });
  });

  it("cannot override them in a row stored before admission refused it", () => {
    const m = createMessage({ topic: TOPIC, body: { ok: 1 } });
    const forged = JSON.stringify({ topic: "org.example.bob.payment", msg: { x: 1 }, msg_id: "y" });
    m.headers[LEGACY_HEADER.extra] = `{"__proto__":{"x":1},${forged.slice(1)}`;
    const out = legacyOf(m);
    expect(out["topic"]).toBe(TOPIC);
    expect(out["msg"]).toEqual({ ok: 1 });
    expect(out["msg_id"]).toMatch(/^\d{4}-/);
    expect(out["msg_id"]).not.toBe("y");
  });
});

describe("fedmsg.timestamp", () => {
  it("must be the message's sent_at: another time would make the legacy envelope say another", () => {
    const sentAt = "2026-12-03T10:00:00.250Z";
    const at = (ts: number) => () =>
      createMessage({ topic: TOPIC, body: {}, sentAt, headers: { [LEGACY_HEADER.timestamp]: ts } });
    expect(at(Date.parse(sentAt) / 1000)).not.toThrow();
    expect(at(1)).toThrow(/header 'fedmsg.timestamp' must be the message's sent_at/);
    // What the legacy decoder makes passes its own check.
    const { message } = decodeLegacyEnvelope(
      Buffer.from('{"i":1,"msg":{},"msg_id":"2024-x","timestamp":1700000000.1234,"topic":"t.a.b"}'),
    );
    expect(() => createMessage(message)).not.toThrow();
  });
});

describe("fedmsg envelopes with fields missing or of odd types still round trip byte for byte", () => {
  it.each([
    [
      "no i",
      '{"msg":{"duration":5.0},"msg_id":"2024-abc","timestamp":1700000000,"topic":"t.a.b","username":"apache"}',
    ],
    [
      "no username",
      '{"i":4,"msg":{"duration":5.0},"msg_id":"2024-abc","timestamp":1700000000,"topic":"t.a.b"}',
    ],
    [
      "null crypto and signature",
      '{"crypto":null,"i":4,"msg":{"duration":5.0},"msg_id":"2024-abc","signature":null,"timestamp":1700000000,"topic":"t.a.b","username":"apache"}',
    ],
    [
      "a string seq_id",
      '{"i":4,"msg":{"duration":5.0},"msg_id":"2024-abc","seq_id":"7","timestamp":1700000000,"topic":"t.a.b","username":"apache"}',
    ],
  ])("%s", (_what, text) => {
    const { message } = decodeLegacyEnvelope(Buffer.from(text));
    expect(encodeLegacyFrames(message, 99)[1].toString("utf8")).toBe(text);
  });
});

describe("fedmsg.envelope (the text kept for byte-for-byte re-emission)", () => {
  const ingested = () =>
    decodeLegacyEnvelope(
      Buffer.from(
        '{"i":4,"msg":{"duration":5.0},"msg_id":"2024-abc","timestamp":1700000000,"topic":"org.fedoraproject.prod.bodhi.x","username":"apache"}',
      ),
    ).message;

  it("is sent when it differs from the message in form only", () => {
    const m = ingested();
    expect(m.headers[LEGACY_HEADER.envelope]).toBeDefined();
    expect(encodeLegacyFrames(m, 9)[1].toString()).toContain('"duration":5.0');
  });

  it.each([
    ["msg", (env: Record<string, unknown>) => ({ ...env, msg: { shown: "forged" } })],
    ["topic", (env: Record<string, unknown>) => ({ ...env, topic: "org.fedoraproject.prod.other.x" })],
    ["msg_id", (env: Record<string, unknown>) => ({ ...env, msg_id: "2024-other" })],
    ["timestamp", (env: Record<string, unknown>) => ({ ...env, timestamp: 1 })],
  ])("is ignored when its %s differs from the message's (re-encoded instead)", (_what, change) => {
    const m = ingested();
    const kept = JSON.parse(String(m.headers[LEGACY_HEADER.envelope])) as Record<string, unknown>;
    m.headers[LEGACY_HEADER.envelope] = JSON.stringify(change(kept));
    const out = legacyOf(m);
    expect(out).toMatchObject({
      msg: { duration: 5 },
      topic: m.topic,
      msg_id: "2024-abc",
      timestamp: 1700000000,
    });
  });

  it("set by a submitter with another body: legacy subscribers get the message's body", () => {
    const m = createMessage({ topic: TOPIC, body: { signed: "what the signature covers" } });
    m.headers[LEGACY_HEADER.envelope] = JSON.stringify({
      topic: TOPIC,
      msg_id: m.id,
      msg: { shown: "other" },
    });
    expect(legacyOf(m)["msg"]).toEqual({ signed: "what the signature covers" });
  });
});
