/**
 * A fedmsg envelope ingested by herald is re-emitted byte for byte even when JSON.parse cannot give its
 * numbers back as written (5.0, integers past 2^53): fedmsg subscribers that check signatures re-serialise
 * `msg` and would otherwise fail.
 */
import { describe, expect, it } from "vitest";
import { decodeEnvelope, encodeEnvelope } from "../src/wire/herald.js";
import {
  decodeLegacyEnvelope,
  encodeLegacyFrames,
  LEGACY_HEADER,
  MAX_VERBATIM_ENVELOPE_BYTES,
} from "../src/wire/legacy.js";

const TOPIC = "org.fedoraproject.prod.bodhi.update.comment";
const ID = "2024-0b3f0d0e-7c1a-4b8e-9a51-3b2f0e2f9d11";

/** As fedmsg writes it: json.dumps(d, sort_keys=True, separators=(',', ':')). */
function envelope(msg: string, extra = ""): string {
  return `{${extra}"i":4,"msg":${msg},"msg_id":"${ID}","timestamp":1700000000,"topic":"${TOPIC}","username":"apache"}`;
}

/** Decode, carry through herald's own envelope (storage, forwarding), encode in fedmsg format again. */
function roundTrip(text: string): { out: string; headers: Record<string, unknown> } {
  const { message } = decodeLegacyEnvelope(Buffer.from(text), { host: "app01", app: "bodhi" });
  const again = decodeEnvelope(encodeEnvelope(message));
  return { out: encodeLegacyFrames(again, 99)[1].toString("utf8"), headers: message.headers };
}

describe("fedmsg envelopes round trip byte for byte", () => {
  it.each([
    ["a float written 5.0", envelope('{"duration":5.0}')],
    ["an integer past 2^53", envelope('{"big":12345678901234567890}')],
    ["an exponent Python would not write", envelope('{"x":1E+2}')],
  ])("%s", (_what, text) => {
    expect(roundTrip(text).out).toBe(text);
  });

  it("a signed message (certificate, signature) with such numbers", () => {
    const text = envelope(
      '{"comment":{"karma":1.0,"id":12345678901234567890},"agent":"bob"}',
      '"certificate":"Y2VydA==","crypto":"x509",',
    ).replace('"username":"apache"}', '"signature":"c2ln","username":"apache"}');
    const { out, headers } = roundTrip(text);
    expect(out).toBe(text);
    expect(headers[LEGACY_HEADER.signature]).toBe("c2ln");
  });

  it("keeps no copy of an envelope that re-encodes to itself", () => {
    const text = envelope('{"duration":5.5,"n":3}');
    const { out, headers } = roundTrip(text);
    expect(out).toBe(text);
    expect(headers[LEGACY_HEADER.envelope]).toBeUndefined();
  });

  it("does not send the kept text for a message whose topic is no longer the envelope's", () => {
    const { message } = decodeLegacyEnvelope(Buffer.from(envelope('{"duration":5.0}')));
    const moved = { ...message, topic: "org.fedoraproject.prod.other.thing" };
    const out = JSON.parse(encodeLegacyFrames(moved, 1)[1].toString("utf8")) as Record<string, unknown>;
    expect(out["topic"]).toBe(moved.topic);
  });
});

describe("the kept envelope text", () => {
  it("is not kept past MAX_VERBATIM_ENVELOPE_BYTES (the AMQP header table must hold every header)", () => {
    const text = envelope(`{"duration":5.0,"pad":"${"x".repeat(MAX_VERBATIM_ENVELOPE_BYTES)}"}`);
    const { message } = decodeLegacyEnvelope(Buffer.from(text));
    expect(message.headers[LEGACY_HEADER.envelope]).toBeUndefined();
  });
});

describe("fedmsg timestamps", () => {
  const at = (ts: string) => `{"i":1,"msg":{},"msg_id":"${ID}","timestamp":${ts},"topic":"${TOPIC}"}`;
  const sentAt = (ts: string) => decodeLegacyEnvelope(Buffer.from(at(ts)), {}).message.sentAt;

  it("reads years 0000 to 9999, fractions kept to the millisecond", () => {
    expect(sentAt("1700000000.1234")).toBe("2023-11-14T22:13:20.123Z");
    expect(sentAt("253402300799")).toBe("9999-12-31T23:59:59.000Z");
    expect(sentAt("-62167219200")).toBe("0000-01-01T00:00:00.000Z");
  });

  it("refuses a timestamp past year 9999 as out of range, naming the field", () => {
    // toISOString writes year 10000 as "+010000-...": it used to fail later as an invalid sentAt.
    for (const ts of ["253402300800", "-62167219201", "8e12", "1e300"])
      expect(() => sentAt(ts), ts).toThrow(/'timestamp' is out of range.*years 0000-9999/);
  });
});
