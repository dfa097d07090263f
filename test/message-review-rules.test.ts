import { describe, expect, it } from "vitest";
import { MessageRejectedError } from "../src/errors.js";
import { fmSentAt } from "../src/wire/fedora-messaging.js";
import type { JsonObject, JsonValue } from "../src/wire/json.js";
import { decodeLegacyEnvelope, encodeLegacyFrames } from "../src/wire/legacy.js";
import {
  createMessage,
  isSentAt,
  MAX_BODY_DEPTH,
  MAX_VIA,
  type Message,
  validateMessage,
} from "../src/wire/message.js";

const base = (): Message => createMessage({ topic: "org.example.t", body: { a: 1 } });

function refusal(m: Message): string {
  try {
    validateMessage(m);
  } catch (err) {
    expect(err).toBeInstanceOf(MessageRejectedError);
    expect((err as MessageRejectedError).code).toBe("INVALID");
    return (err as Error).message;
  }
  throw new Error("validateMessage accepted it");
}

/** A body `levels` deep, objects and lists alternating (each is a level), the outermost an object. */
function nested(levels: number): JsonObject {
  let v: JsonValue = {};
  for (let i = 1; i < levels; i++) v = (levels - i) % 2 === 1 ? { a: v } : [v];
  return v as JsonObject;
}

/** Nesting depth of a JSON value, counted independently of the code under test. */
function depthOf(v: unknown): number {
  if (typeof v !== "object" || v === null) return 0;
  return 1 + Math.max(0, ...Object.values(v).map(depthOf));
}

describe("sentAt: strict ISO 8601", () => {
  it("accepts the forms herald, Python and fedora-messaging write", () => {
    for (const s of [
      "2026-11-30T08:18:08.123Z",
      "2026-11-30T08:18:08Z",
      "2024-01-01T00:00:00.123456+00:00",
      "2024-02-29T23:59:59-05:30",
      fmSentAt("2026-11-30T08:18:08.123Z"),
      new Date(0).toISOString(),
    ])
      expect(isSentAt(s), s).toBe(true);
  });

  it("refuses anything else, naming the field and the format", () => {
    for (const s of [
      "1",
      "March 7, 2024",
      "2024-03-07",
      "2024-03-07 10:00:00Z",
      "2024-03-07t10:00:00z",
      "2024-03-07T10:00:00",
      "2024-03-07T10:00Z",
      "2024-03-07T24:00:00Z",
      "2024-03-07T10:00:60Z",
      "2023-02-29T10:00:00Z",
      "2024-04-31T10:00:00Z",
      "2024-03-07T10:00:00+0530",
      "+275760-09-13T00:00:00.000Z",
    ]) {
      expect(isSentAt(s), s).toBe(false);
      expect(refusal({ ...base(), sentAt: s })).toMatch(
        /^sentAt \(sent_at\) must be an ISO 8601 time: YYYY-MM-DDTHH:MM:SS, optional fraction, then Z or ±HH:MM/,
      );
    }
  });

  it("is what the fedmsg decoder makes of an ordinary timestamp", () => {
    const m = createMessage({ topic: "org.fedoraproject.prod.bodhi.update", body: { a: 1 } });
    const frames = encodeLegacyFrames({ ...m, sentAt: "2024-03-07T10:00:00.000Z" }, 1);
    const back = decodeLegacyEnvelope(frames[1], { host: "h", app: "a" }).message;
    expect(back.sentAt).toBe("2024-03-07T10:00:00.000Z");
  });
});

describe("body nesting", () => {
  it(`accepts ${MAX_BODY_DEPTH} levels, refuses ${MAX_BODY_DEPTH + 1} naming the limit`, () => {
    expect(depthOf(nested(MAX_BODY_DEPTH))).toBe(MAX_BODY_DEPTH);
    expect(() => validateMessage({ ...base(), body: nested(MAX_BODY_DEPTH) })).not.toThrow();
    expect(refusal({ ...base(), body: nested(MAX_BODY_DEPTH + 1) })).toBe(
      `body nests deeper than ${MAX_BODY_DEPTH} levels (the limit for bodies): flatten it`,
    );
  });

  it("refuses a non-finite number in the body or a header by name", () => {
    expect(refusal({ ...base(), body: { x: [1, Number.NEGATIVE_INFINITY] } })).toMatch(
      /^body holds the number -Infinity/,
    );
    expect(refusal({ ...base(), headers: { h: Number.NaN } })).toMatch(
      /^header 'h' must be a string, finite number/,
    );
  });
});

describe("origin fields", () => {
  it("names the field and the type expected", () => {
    const o = base().origin;
    const bad = (origin: unknown) => refusal({ ...base(), origin: origin as Message["origin"] });
    expect(bad({ ...o, host: {} })).toBe("origin.host must be a string, got an object");
    expect(bad({ ...o, app: 5 })).toBe("origin.app must be a string, got a number");
    expect(bad({ ...o, pid: Number.NaN })).toMatch(/^origin\.pid must be a non-negative integer/);
    expect(bad({ ...o, pid: -1 })).toMatch(/^origin\.pid must be a non-negative integer/);
    expect(bad({ ...o, user: null })).toBe(
      "origin.user must be a string (leave it out when unknown), got null",
    );
  });
});

describe("via", () => {
  const name = (i: number) => `hub${i}.example.org`;
  it(`accepts up to ${MAX_VIA} broker names`, () => {
    expect(() =>
      validateMessage({ ...base(), via: Array.from({ length: MAX_VIA }, (_, i) => name(i)) }),
    ).not.toThrow();
    expect(() => validateMessage({ ...base(), via: ["h".repeat(255)] })).not.toThrow();
  });

  it("refuses more entries, empty names, spaces and names over 255 characters", () => {
    expect(refusal({ ...base(), via: Array.from({ length: MAX_VIA + 1 }, (_, i) => name(i)) })).toBe(
      `via lists ${MAX_VIA + 1} brokers, at most ${MAX_VIA}: a forwarding loop?`,
    );
    for (const v of ["", "a b", "tab\there", "h".repeat(256)])
      expect(refusal({ ...base(), via: [v] })).toMatch(/^via entry ".*" is not a broker name \(broker\.name/);
  });
});

describe("createMessage with a hand-written sentAt", () => {
  it("refuses a loose date instead of storing it", () => {
    expect(() => createMessage({ topic: "a.b", body: {}, sentAt: "March 7, 2024" })).toThrow(
      MessageRejectedError,
    );
  });
});
