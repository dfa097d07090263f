import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../src/errors.js";
import { decodeEnvelope, encodeEnvelope } from "../src/wire/herald.js";
import { decodeLegacyEnvelope, encodeLegacyFrames } from "../src/wire/legacy.js";
import { createMessage } from "../src/wire/message.js";

// Decoders face the network: whatever bytes arrive, they either decode or throw ProtocolError.

const sample = createMessage({
  topic: "org.fedoraproject.prod.bodhi.update.request",
  body: { update: { alias: "FEDORA-2026-1", n: 3.5, list: [1, "x", null, true] } },
  headers: { "herald.signer": "a:0011223344556677", k: 1 },
  origin: { host: "h", app: "a", pid: 1, user: "u" },
});
const heraldBytes = encodeEnvelope({ ...sample, seq: 4, stream: "s" });
const legacyBytes = encodeLegacyFrames(
  { ...sample, headers: { "fedmsg.signature": "c2ln", "fedmsg.crypto": "x509", "fedmsg.seq_id": 9 } },
  3,
)[1];

function onlyProtocolErrors(decode: (b: Buffer) => unknown): (b: Uint8Array) => void {
  return (bytes) => {
    try {
      decode(Buffer.from(bytes));
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
    }
  };
}

/** Byte-level mutations of a valid envelope: flips, truncation, insertion, deletion. */
function mutated(valid: Buffer): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.nat(valid.length).map((n) => valid.subarray(0, n)),
    fc
      .array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 8,
      })
      .map((edits) => {
        const b = Buffer.from(valid);
        for (const [at, v] of edits) b[at] = v;
        return b;
      }),
    fc
      .tuple(fc.nat(valid.length), fc.uint8Array({ maxLength: 16 }), fc.nat(16))
      .map(([at, ins, del]) => Buffer.concat([valid.subarray(0, at), ins, valid.subarray(at + del)])),
  );
}

/** Valid JSON with the right field names and arbitrary values: reaches the field checks. */
function shapedJson(keys: string[]): fc.Arbitrary<Uint8Array> {
  const value = fc.oneof(
    fc.jsonValue(),
    fc.double(),
    fc.constantFrom(1e300, -1e300, 8.64e15, 1e20, -0, 2 ** 53 + 1),
    fc.constant("org.fedoraproject.prod.x"),
    fc.string(),
  );
  const rec: Record<string, fc.Arbitrary<unknown>> = {};
  for (const k of keys) rec[k] = value;
  return fc
    .record(rec, { requiredKeys: [] })
    .map((o) => Buffer.from(JSON.stringify(o).replace(/"__DEEP__"/g, "[".repeat(5000) + "]".repeat(5000))));
}

const deepNesting = fc.constantFrom(
  Buffer.from("[".repeat(200_000)),
  Buffer.from(
    `{"topic":"a.b","msg":{},"msg_id":"x","timestamp":1,"extra":${"[".repeat(20_000)}${"]".repeat(20_000)}}`,
  ),
  Buffer.from(
    `${heraldBytes.toString().slice(0, -1)},"zz":${"[".repeat(20_000)}${"]".repeat(20_000)}}`.replace(
      '"body":{',
      `"body":{"deep":${"[".repeat(20_000)}${"]".repeat(20_000)},`,
    ),
  ),
);

const RUNS = { numRuns: 2000 };

describe("herald envelope decoder (decodeEnvelope)", () => {
  it("decodes the valid sample (sanity)", () => {
    expect(decodeEnvelope(heraldBytes).id).toBe(sample.id);
  });

  it("random bytes throw only ProtocolError", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), onlyProtocolErrors(decodeEnvelope)), RUNS);
  });

  it("truncated and mutated envelopes throw only ProtocolError", () => {
    fc.assert(fc.property(mutated(heraldBytes), onlyProtocolErrors(decodeEnvelope)), RUNS);
  });

  it("well-formed JSON with wrong field types throws only ProtocolError", () => {
    const keys = [
      "v",
      "id",
      "topic",
      "sent_at",
      "schema",
      "schema_version",
      "headers",
      "body",
      "origin",
      "seq",
      "stream",
    ];
    const base = JSON.parse(heraldBytes.toString()) as Record<string, unknown>;
    const overlay = fc
      .tuple(fc.constantFrom(...keys), fc.oneof(fc.jsonValue(), fc.double(), fc.string()))
      .map(([k, v]) => Buffer.from(JSON.stringify({ ...base, [k]: v })));
    fc.assert(fc.property(fc.oneof(shapedJson(keys), overlay), onlyProtocolErrors(decodeEnvelope)), RUNS);
  });

  it("pathological nesting throws only ProtocolError", () => {
    fc.assert(fc.property(deepNesting, onlyProtocolErrors(decodeEnvelope)), { numRuns: 3 });
  });
});

describe("fedmsg envelope decoder (decodeLegacyEnvelope)", () => {
  const decode = (b: Buffer) => decodeLegacyEnvelope(b, { host: "h", app: "a" });

  it("decodes the valid sample (sanity)", () => {
    expect(decode(legacyBytes).message.topic).toBe(sample.topic);
  });

  it("random bytes throw only ProtocolError", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), onlyProtocolErrors(decode)), RUNS);
  });

  it("truncated and mutated envelopes throw only ProtocolError", () => {
    fc.assert(fc.property(mutated(legacyBytes), onlyProtocolErrors(decode)), RUNS);
  });

  it("well-formed JSON with wrong field types (incl. out-of-range timestamps) throws only ProtocolError", () => {
    const keys = [
      "topic",
      "msg",
      "timestamp",
      "msg_id",
      "i",
      "username",
      "crypto",
      "signature",
      "certificate",
      "seq_id",
    ];
    const base = JSON.parse(legacyBytes.toString()) as Record<string, unknown>;
    const overlay = fc
      .tuple(
        fc.constantFrom(...keys, "extra_field"),
        fc.oneof(fc.jsonValue(), fc.double(), fc.constantFrom(1e300, -1e300, 8.64e12, 1e20)),
      )
      .map(([k, v]) => Buffer.from(JSON.stringify({ ...base, [k]: v })));
    fc.assert(fc.property(fc.oneof(shapedJson(keys), overlay), onlyProtocolErrors(decode)), RUNS);
  });

  it("pathological nesting throws only ProtocolError", () => {
    fc.assert(fc.property(deepNesting, onlyProtocolErrors(decode)), { numRuns: 3 });
  });
});
