import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HeraldError } from "../src/errors.js";
import { decodeEnvelope, encodeEnvelope, encodeHeraldFrames, toCloudEvent } from "../src/wire/herald.js";
import { canonicalJson, pythonFloatRepr, pythonJson } from "../src/wire/json.js";
import { decodeLegacyEnvelope, encodeLegacyFrames, toLegacyObject } from "../src/wire/legacy.js";
import { createMessage, type Message, newId } from "../src/wire/message.js";
import { assertTopic, TopicPattern, topicProblem } from "../src/wire/topic.js";

const PY = "/usr/bin/python3";

function pyDumps(values: unknown[]): string[] {
  // The reference: what fedmsg's encoder (sort_keys, compact separators, ensure_ascii) emits for the same values.
  const script =
    "import sys, json\nfor line in sys.stdin:\n    sys.stdout.write(json.dumps(json.loads(line), sort_keys=True, separators=(',', ':')) + '\\n')\n";
  const input = values.map((v) => JSON.stringify(v)).join("\n");
  const r = spawnSync(PY, ["-c", script], { input, encoding: "utf8", maxBuffer: 64 << 20 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split("\n").slice(0, values.length);
}

const jsonValue = fc.jsonValue({ maxDepth: 4, stringUnit: "binary" }) as fc.Arbitrary<unknown>;
const jsonObject = fc.dictionary(fc.string(), jsonValue, { maxKeys: 6 }) as fc.Arbitrary<
  Record<string, never>
>;

describe("legacy fedmsg encoding", () => {
  it("is byte-identical to Python's json.dumps(sort_keys=True, separators=(',', ':')) for random values", () => {
    const samples = fc.sample(
      fc.oneof(
        jsonObject,
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.string({ unit: "binary" }),
      ),
      1500,
    );
    const extra = [
      1e16,
      1e-5,
      0.1,
      -0.0,
      1.5e300,
      123456789.125,
      1e21,
      5e-324,
      "\u007f\u2028\ud83d\ude00",
      { "\ud83d\ude00": 1, "\uffff": 2 },
    ];
    const values = [...samples, ...extra];
    const expected = pyDumps(values);
    values.forEach((v, i) => {
      // JSON text loses -0 for integral numbers; Python sees what JSON.stringify wrote.
      const viaJson = JSON.parse(JSON.stringify(v)) as unknown;
      expect(pythonJson(viaJson)).toBe(expected[i]);
    });
  });

  it("writes floats the way CPython's repr does", () => {
    expect(pythonFloatRepr(1e16)).toBe("1e+16");
    expect(pythonFloatRepr(1e-5)).toBe("1e-05");
    expect(pythonFloatRepr(0.0001)).toBe("0.0001");
    expect(pythonFloatRepr(123.5)).toBe("123.5");
    expect(pythonFloatRepr(-2.5e-7)).toBe("-2.5e-07");
  });

  it("writes floats around and inside the fixed-notation range exactly as CPython does", () => {
    const edges = [
      1e-4,
      9.999999999999999e-5,
      0.00010000000000000002,
      999999999999999.9,
      1e16 - 2,
      0.1,
      1 / 3,
    ];
    const values = [
      ...edges.flatMap((v) => [v, -v]),
      ...fc.sample(fc.double({ min: 1e-5, max: 1e17, noNaN: true }), 3000),
      ...fc.sample(fc.double({ min: -1e17, max: -1e-5, noNaN: true }), 1000),
    ];
    const expected = pyDumps(values);
    values.forEach((v, i) => {
      expect(pythonJson(v)).toBe(expected[i]);
    });
  });

  it("a herald message in legacy format matches what fedmsg would emit for the same fields", () => {
    const msg = createMessage({
      topic: "org.fedoraproject.prod.bodhi.update.comment",
      body: { a: "é", n: 1.5, z: [1, 2] },
    });
    const [topic, env] = encodeLegacyFrames(msg, 7);
    expect(topic.toString()).toBe(msg.topic);
    const obj = toLegacyObject(msg, 7);
    expect(env.toString()).toBe(pyDumps([obj])[0]);
    expect(obj["msg_id"]).toBe(`${new Date(msg.sentAt).getUTCFullYear()}-${msg.id}`);
    expect(obj["i"]).toBe(7);
  });

  it("a legacy message round-trips byte for byte through herald (fields carried in headers)", () => {
    const original = Buffer.from(
      pyDumps([
        {
          topic: "org.fedoraproject.prod.koji.build.tag",
          msg: { build: "x-1.0", tag: "f40" },
          timestamp: 1700000000.25,
          msg_id: "2023-1b4e28ba-2fa1-41d2-883f-0016d3cca427",
          i: 3,
          username: "apache",
          crypto: "x509",
          signature: "c2ln",
          certificate: "Y2VydA==",
          extra_field: { kept: true },
        },
      ])[0]!,
    );
    const { message, i } = decodeLegacyEnvelope(original, { host: "koji01", app: "koji" });
    expect(i).toBe(3);
    expect(message.id).toBe("2023-1b4e28ba-2fa1-41d2-883f-0016d3cca427");
    // Through the herald envelope and back.
    const again = decodeEnvelope(encodeEnvelope(message));
    expect(encodeLegacyFrames(again, 99)[1].equals(original)).toBe(true);
  });

  it("herald-native ids survive a trip through the legacy format", () => {
    const msg = createMessage({ topic: "a.b", body: {} });
    const { message } = decodeLegacyEnvelope(encodeLegacyFrames(msg, 1)[1]);
    expect(message.id).toBe(msg.id);
  });

  it("rejects malformed legacy envelopes with a ProtocolError naming the field", () => {
    expect(() => decodeLegacyEnvelope(Buffer.from("{"))).toThrow(/not valid JSON/);
    expect(() => decodeLegacyEnvelope(Buffer.from('{"topic":"a","msg":1}'))).toThrow(/'msg'/);
    expect(() => decodeLegacyEnvelope(Buffer.from('{"topic":"a","msg":{},"msg_id":"x"}'))).toThrow(
      /'timestamp'/,
    );
  });
});

describe("herald envelope", () => {
  it("round-trips byte-exactly for random messages", () => {
    fc.assert(
      fc.property(
        jsonObject,
        fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null))),
        (raw, headers) => {
          // A body is JSON: -0 and the like have already become what JSON text can say.
          const body = JSON.parse(JSON.stringify(raw)) as Record<string, never>;
          const m = createMessage({ topic: "org.example.test", body, headers });
          m.seq = 5;
          m.stream = "b/s/x";
          const bytes = encodeEnvelope(m);
          const back = decodeEnvelope(bytes);
          expect(back).toEqual(m);
          expect(encodeEnvelope(back).equals(bytes)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("is canonical: key order does not change the bytes", () => {
    const a = createMessage({ topic: "x.y", body: { b: 1, a: { d: 1, c: 2 } } });
    const b: Message = { ...a, body: { a: { c: 2, d: 1 }, b: 1 } };
    expect(encodeEnvelope(a).equals(encodeEnvelope(b))).toBe(true);
    expect(canonicalJson({ b: 1, a: [3, { z: 1, y: 2 }] })).toBe('{"a":[3,{"y":2,"z":1}],"b":1}');
  });

  it("frames are [topic, envelope] and map onto CloudEvents", () => {
    const m = createMessage({ topic: "x.y", body: { k: 1 }, headers: { "fedmsg.i": 2 } });
    const [t] = encodeHeraldFrames(m);
    expect(t.toString()).toBe("x.y");
    const ce = toCloudEvent(m);
    expect(ce).toMatchObject({ specversion: "1.0", id: m.id, type: "x.y", time: m.sentAt, data: { k: 1 } });
    expect(ce["heraldfedmsgi"]).toBe(2);
  });

  it("names the field at fault", () => {
    expect(() => decodeEnvelope(Buffer.from('{"v":2}'))).toThrow(/version 2/);
    expect(() => decodeEnvelope(Buffer.from('{"v":1,"origin":{}}'))).toThrow(/'id'/);
  });
});

describe("topics and patterns", () => {
  it("accepts dotted words and rejects the rest with reasons", () => {
    expect(topicProblem("org.fedoraproject.prod.bodhi.update")).toBeUndefined();
    expect(topicProblem("")).toMatch(/empty/);
    expect(topicProblem("a.*.b")).toMatch(/wildcard/);
    expect(topicProblem("a.#")).toMatch(/wildcard/);
    for (const t of ["a..b", ".a", "a.", ".", "a.b..", "..a"]) expect(topicProblem(t)).toMatch(/empty word/);
    for (const t of ["a", "a.b", "a.b.c"]) expect(topicProblem(t)).toBeUndefined();
    expect(topicProblem("a\u0000b")).toMatch(/U\+0000/);
    expect(topicProblem("x".repeat(256))).toMatch(/256 bytes/);
    expect(topicProblem("é".repeat(128))).toMatch(/256 bytes/);
    expect(() => assertTopic("a b")).toThrow(HeraldError);
  });

  it("matches AMQP topic rules exactly", () => {
    const cases: Array<[string, string, boolean]> = [
      ["a.b", "a.b", true],
      ["a.b", "a.bc", false],
      ["a.b", "a.b.c", false],
      ["a.*", "a.b", true],
      ["a.*", "a.b.c", false],
      ["a.#", "a", true],
      ["a.#", "a.b.c", true],
      ["#", "anything.at.all", true],
      ["*.b.#", "x.b", true],
      ["*.b.#", "x.c.b", false],
      ["a.#.z", "a.z", true],
      ["a.#.z", "a.b.c.z", true],
      ["a.#.z", "a.b.c", false],
    ];
    for (const [p, t, want] of cases) expect(new TopicPattern(p).matches(t), `${p} ~ ${t}`).toBe(want);
    expect(new TopicPattern("a.b.*").prefixOf()).toBe("a.b.");
    expect(new TopicPattern("#").prefixOf()).toBe("");
    expect(new TopicPattern("a.b").prefixOf()).toBe("a.b");
  });
});

describe("ids", () => {
  it("are UUIDv7 and sort by time", () => {
    const ids = Array.from({ length: 2000 }, () => newId());
    for (const id of ids)
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(ids).size).toBe(ids.length);
    // The random tails too (the ids span several refills of the random pool): no chunk is handed out twice.
    expect(new Set(ids.map((id) => id.slice(-12))).size).toBe(ids.length);
    const later = newId(Date.now() + 1000);
    expect(later > ids[0]!).toBe(true);
  });
});
