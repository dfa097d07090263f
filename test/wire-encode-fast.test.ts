import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRow } from "../src/storage/codec.js";
import { encodeHeraldAmqp } from "../src/wire/fedora-messaging.js";
import {
  decodeStoredEnvelope,
  ENVELOPE_GENERATION,
  encodeBaseEnvelope,
  encodeEnvelope,
  encodeHeraldFrames,
  encodeStampedFrames,
  keptEnvelopeCount,
  storedEnvelopeBytes,
} from "../src/wire/herald.js";
import { canonicalJson } from "../src/wire/json.js";
import { createMessage, isoNow, JSON_REWRITE_GROWTH, type Message } from "../src/wire/message.js";

/** The definition of JCS for JSON data: keys sorted by UTF-16 code units at every level, then JSON.stringify. */
function sortDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortDeep);
  if (v !== null && typeof v === "object") {
    const obj = v as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(obj)
        .sort()
        .map((k) => [k, sortDeep(obj[k])]),
    );
  }
  return v;
}

const jsonValue = fc.jsonValue({ maxDepth: 4, stringUnit: "binary" });
const body = fc
  .dictionary(fc.string({ unit: "binary" }), jsonValue, { maxKeys: 6 })
  .map((o) => JSON.parse(JSON.stringify(o)) as Record<string, never>);
const topic = fc.stringMatching(/^[a-z0-9_-]{1,8}(\.[a-z0-9_-]{1,8}){0,4}$/);
const message = fc
  .record({
    topic,
    body,
    headers: fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null))),
    via: fc.array(fc.string({ unit: "binary" }), { maxLength: 3 }),
    user: fc.option(fc.string({ unit: "binary" }), { nil: undefined }),
  })
  .map(({ topic, body, headers, via, user }): Message => {
    const m = createMessage({ topic, body, headers });
    if (via.length > 0) m.via = via;
    if (user !== undefined) m.origin.user = user;
    return m;
  });

describe("canonical JSON encoder", () => {
  it("equals JSON.stringify of the key-sorted value (the JCS definition) for random JSON", () => {
    fc.assert(
      fc.property(jsonValue, (v) => {
        expect(canonicalJson(v)).toBe(JSON.stringify(sortDeep(v)));
      }),
      { numRuns: 1000 },
    );
  });

  it("skips undefined members and refuses what JSON cannot say", () => {
    expect(canonicalJson({ b: undefined, a: 1 })).toBe('{"a":1}');
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson([undefined])).toThrow(/undefined/);
    expect(() => canonicalJson({ a: 1n })).toThrow(/bigint/);
  });
});

describe("stamped herald frames (seq/stream spliced into the stored envelope)", () => {
  it("are byte-identical to encoding the stamped message afresh", () => {
    fc.assert(
      fc.property(message, fc.nat(), fc.string({ unit: "binary" }), (m, seq, stream) => {
        const fresh = encodeHeraldFrames({ ...m, seq, stream });
        // Without a stored envelope: encoded afresh.
        const cold = encodeStampedFrames(m, seq, stream);
        expect(cold[1].equals(fresh[1])).toBe(true);
        // After the outbox encoded it for storage: spliced.
        const base = encodeBaseEnvelope(m);
        const warm = encodeStampedFrames(m, seq, stream);
        expect(warm[0].equals(fresh[0])).toBe(true);
        expect(warm[1].toString()).toBe(fresh[1].toString());
        // Read back from disk: spliced into the row's own bytes, the same bytes.
        const back = decodeRow({ seq: 1, envelope: base }, "test.db");
        expect(encodeStampedFrames(back, seq, stream)[1].equals(fresh[1])).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("for a message read back from disk are spliced into the row's own bytes, not encoded again", () => {
    const m = createMessage({ topic: "org.example.disk", body: { a: 1 } });
    // Bytes no encoder writes (1.0 for 1) prove that the row's text is what goes out.
    const row = Buffer.from(encodeBaseEnvelope(m).toString().replace('{"a":1}', '{"a":1.0}'));
    const back = decodeStoredEnvelope(row);
    const text = encodeStampedFrames(back, 4, "b/herald/x")[1].toString();
    expect(text).toContain('"body":{"a":1.0}');
    expect(JSON.parse(text)).toEqual(
      JSON.parse(encodeHeraldFrames({ ...m, seq: 4, stream: "b/herald/x" })[1].toString()),
    );
  });

  it("fall back to a fresh encode when the stored bytes do not end as expected", () => {
    const m = createMessage({ topic: "org.example.splice", body: { a: 1 } });
    encodeBaseEnvelope(m);
    // Changed after it was stored: the remembered bytes no longer end with this topic.
    m.topic = "org.example.other";
    const fresh = encodeHeraldFrames({ ...m, seq: 7, stream: "b/herald/x" });
    expect(encodeStampedFrames(m, 7, "b/herald/x")[1].equals(fresh[1])).toBe(true);
  });

  it("a message that already carries seq/stream is stored without them", () => {
    const m: Message = { ...createMessage({ topic: "a.b", body: {} }), seq: 3, stream: "old/stream" };
    expect(encodeBaseEnvelope(m).toString()).not.toMatch(/"seq"|"stream"/);
    const fresh = encodeHeraldFrames({ ...m, seq: 9, stream: "new" });
    expect(encodeStampedFrames(m, 9, "new")[1].equals(fresh[1])).toBe(true);
  });

  it("keeps the stored text of the newest one to two generations only; older ones are encoded afresh, same bytes", () => {
    // Never longer than the outbox's in-memory window of 4,096 messages, which holds the same messages.
    expect(2 * ENVELOPE_GENERATION).toBeLessThanOrEqual(4096);
    const msgs = Array.from({ length: 9000 }, (_, i) =>
      createMessage({ topic: "org.example.many", body: { i } }),
    );
    for (const m of msgs) encodeBaseEnvelope(m);
    // Two generations (earlier tests stored some too).
    expect(keptEnvelopeCount()).toBeGreaterThanOrEqual(ENVELOPE_GENERATION);
    expect(keptEnvelopeCount()).toBeLessThanOrEqual(2 * ENVELOPE_GENERATION);
    for (const m of [msgs[0]!, msgs[8999]!]) {
      const fresh = encodeHeraldFrames({ ...m, seq: 1, stream: "s" });
      expect(encodeStampedFrames(m, 1, "s")[1].equals(fresh[1])).toBe(true);
    }
  });

  it("keeps big messages' stored text by size too: a few MiB, not 4,096 of them", () => {
    const big = "x".repeat(900 << 10);
    for (let i = 0; i < 20; i++)
      encodeBaseEnvelope(createMessage({ topic: "org.example.big", body: { i, big } }));
    // Two generations of about 4 MiB each: up to 5 of these 900 KiB envelopes apiece.
    expect(keptEnvelopeCount()).toBeLessThanOrEqual(10);
  });
});

describe("stored envelope bytes reused by sinks (herald-format AMQP)", () => {
  it("equal encodeEnvelope for live messages and for rows read back, and are absent once seq/stream differ", () => {
    fc.assert(
      fc.property(message, (m) => {
        const fresh = encodeEnvelope(m);
        expect(storedEnvelopeBytes(m)).toBeUndefined(); // never stored: nothing to reuse
        const stored = encodeBaseEnvelope(m);
        expect(storedEnvelopeBytes(m)?.equals(fresh)).toBe(true);
        const back = decodeRow({ seq: 5, envelope: stored }, "test.db");
        expect(back).toEqual(m);
        expect(storedEnvelopeBytes(back)).toBe(stored); // the row's own buffer, not a copy
        expect(encodeEnvelope(back).equals(stored)).toBe(true);
        expect(encodeHeraldAmqp(back).content.equals(fresh)).toBe(true);
        // A copy with a seq is another envelope; the hidden bytes do not travel with spreads.
        expect(storedEnvelopeBytes({ ...back, seq: 1 })).toBeUndefined();
        expect(storedEnvelopeBytes({ ...back })).toBeUndefined();
      }),
      { numRuns: 300 },
    );
  });

  it("stay hidden: keys, JSON and equality see only the message", () => {
    const m = createMessage({ topic: "org.example.hidden", body: { a: 1 } });
    const back = decodeStoredEnvelope(encodeBaseEnvelope(m));
    expect(Object.keys(back)).toEqual(Object.keys(m));
    expect(JSON.stringify(back)).toBe(JSON.stringify(m));
  });

  it("are not reused for a live message changed after it was stored", () => {
    const m = createMessage({ topic: "org.example.before", body: { a: 1 } });
    encodeBaseEnvelope(m);
    m.topic = "org.example.after";
    expect(storedEnvelopeBytes(m)).toBeUndefined();
    expect(encodeHeraldAmqp(m).content.equals(encodeEnvelope(m))).toBe(true);
  });

  it("still reject a stored row that is not an envelope, naming the damaged file", () => {
    expect(() => decodeRow({ seq: 9, envelope: Buffer.from('{"v":1,"id":3}') }, "x.db")).toThrow(
      /outbox row seq 9 in x.db cannot be decoded.*'origin' must be an object.*the file is damaged/,
    );
  });
});

describe("isoNow (the text of the last millisecond is kept)", () => {
  it("equals Date#toISOString for any sequence of times, repeated or not", () => {
    const ms = fc.integer({ min: 0, max: 8.64e15 });
    fc.assert(
      fc.property(fc.array(fc.oneof(ms, fc.constant(1_764_547_200_123)), { maxLength: 20 }), (times) => {
        for (const t of times) expect(isoNow(t)).toBe(new Date(t).toISOString());
      }),
      { numRuns: 300 },
    );
  });

  it("gives messages made in the same millisecond the same sentAt, and the id's time", () => {
    const a = createMessage({ topic: "a.b", body: {} });
    expect(a.sentAt).toBe(new Date(Date.parse(a.sentAt)).toISOString());
    // The UUIDv7's first 48 bits are the same millisecond as sentAt.
    expect(Number.parseInt(a.id.replace(/-/g, "").slice(0, 12), 16)).toBe(Date.parse(a.sentAt));
  });
});

describe("JSON_REWRITE_GROWTH (how much larger a parsed and re-encoded JSON text can get)", () => {
  const growth = (text: string | Buffer): number =>
    Buffer.byteLength(JSON.stringify(JSON.parse(Buffer.from(text).toString("utf8"))), "utf8") /
    Buffer.byteLength(text);

  it("bounds the worst tokens: exponent numbers, invalid UTF-8, escapes", () => {
    const worst = ["1e20", "9e20", "-1e20", "1E+20", "1e19", "1e-6", "1e21", "[1e20,1e20]"];
    for (const t of worst) expect(growth(t)).toBeLessThanOrEqual(JSON_REWRITE_GROWTH);
    expect(growth("1e20")).toBeGreaterThan(5); // the bound is close to what JSON allows
    expect(growth(Buffer.from([0x22, 0xff, 0x22]))).toBeLessThanOrEqual(JSON_REWRITE_GROWTH); // "\xff" -> U+FFFD
    expect(growth('"\\u00e9\\ud800\\/"')).toBeLessThanOrEqual(1);
  });

  it("holds for arrays of any doubles written in exponent form (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1 }), (xs) => {
        expect(growth(`[${xs.map((x) => x.toExponential()).join(",")}]`)).toBeLessThanOrEqual(
          JSON_REWRITE_GROWTH,
        );
      }),
      { numRuns: 500 },
    );
  });
});
