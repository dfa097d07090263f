import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  inCanonicalOrder,
  pythonJson,
  referenceCanonicalJson,
  referencePythonJson,
} from "../src/wire/json.js";
import { FALLBACK, ready } from "../src/wire/json-ready.js";

// The fast path (JSON.stringify of a checked, key-ordered value) must write exactly what the generic
// encoder writes, byte for byte, or fail the same way.

function outcome(f: () => string): { ok: string } | { err: string } {
  try {
    return { ok: f() };
  } catch (err) {
    return { err: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

function expectSame(v: unknown): void {
  expect(outcome(() => canonicalJson(v))).toEqual(outcome(() => referenceCanonicalJson(v)));
}

const rules = {
  before: (a: string, b: string) => a < b,
  sort: (k: string[]) => k.sort(),
};

describe("canonicalJson's fast path", () => {
  it("equals the generic encoder for arbitrary JSON, any string units and doubles (property)", () => {
    const value = fc.jsonValue({ maxDepth: 5, stringUnit: "binary" });
    const keyed = fc.dictionary(fc.string({ unit: "binary" }), value, { maxKeys: 8 });
    fc.assert(
      fc.property(fc.oneof(value, keyed), fc.double(), (v, d) => {
        expectSame(v);
        expectSame({ v, d });
      }),
      { numRuns: 1500 },
    );
  });

  it("equals the generic encoder where JSON.stringify and canonical JSON differ", () => {
    const odd: unknown[] = [
      { b: 1, a: 2 }, // unsorted
      { "10": 1, "9": 2, a: 3 }, // integer keys: V8 orders them numerically
      { "1": { z: 1, y: 2 }, a: 1 },
      JSON.parse('{"__proto__": {"x": 1}, "a": 1}'),
      JSON.parse('{"b": 1, "__proto__": 2}'),
      { a: undefined, b: 1 },
      { d: new Date(0) },
      { n: Number.NaN },
      { n: Number.POSITIVE_INFINITY },
      { n: -0 },
      { n: 1.5, m: 1e21, k: 1e-7, j: 2 ** 53 + 2 },
      { arr: [1, undefined, 2] },
      // biome-ignore lint/suspicious/noSparseArray: a hole is one of the cases under test
      { arr: [1, , 2] },
      { f: () => 1 },
      { big: 10n },
      { buf: Buffer.from("x") },
      { nested: { deeper: [{ y: 1, x: [{ b: 2, a: 1 }] }] } },
      { s: '\u2028\ud800 é 😀 \u007f \u0000\u001f\b\f\n\r\t"\\' },
      { "\ud83d\ude00": 1, "\uffff": 2, é: 3 }, // code point vs code unit order
      Object.assign(Object.create(null), { b: 1, a: 2 }),
      Object.assign(Object.create(null), { a: 1, b: 2 }),
      undefined,
      "top",
      7,
    ];
    for (const v of odd) expectSame(v);
    let deep: unknown = { leaf: 1 };
    for (let i = 0; i < 300; i++) deep = { d: deep };
    expectSame(deep);
  });

  it("returns sorted input itself, copies only what is out of order, and refuses what it cannot vouch for", () => {
    const sorted = { a: 1, b: { c: [1, 2] } };
    expect(ready(sorted, rules)).toBe(sorted);
    const inner = { y: 1 };
    const mixed = { a: inner, b: { z: 1, x: 2 } };
    const r = ready(mixed, rules) as Record<string, unknown>;
    expect(r).not.toBe(mixed);
    expect(r["a"]).toBe(inner);
    expect(Object.keys(r["b"] as object)).toEqual(["x", "z"]);
    expect(ready({ n: Number.NaN }, rules)).toBe(FALLBACK);
    expect(ready({ "10": 1, "9": 2 }, rules)).toBe(FALLBACK);
  });

  it("leaves out keys inherited from a tampered Object.prototype, as JSON.stringify does", () => {
    const proto = Object.prototype as Record<string, unknown>;
    proto["tampered"] = 1; // enumerable: for-in visits it, Object.keys and JSON.stringify do not
    try {
      for (const v of [
        { a: 1, b: { c: 2 } },
        { b: 1, a: { d: 1, c: 2 } }, // out of order: the copying path
      ]) {
        expect(canonicalJson(v)).toBe(referenceCanonicalJson(v));
        expect(pythonJson(v)).toBe(referencePythonJson(v));
        expect(canonicalJson(v)).not.toContain("tampered");
      }
    } finally {
      delete proto["tampered"];
    }
  });

  it("inCanonicalOrder sorts once and leaves what it cannot vouch for as it is", () => {
    const sorted = { a: 1, b: [{ c: 2 }] };
    expect(inCanonicalOrder(sorted)).toBe(sorted);
    const body = { t: 1, k: 2, text: { z: 1, a: 2 } };
    const ordered = inCanonicalOrder(body);
    expect(JSON.stringify(ordered)).toBe('{"k":2,"t":1,"text":{"a":2,"z":1}}');
    expect(body).toEqual({ t: 1, k: 2, text: { z: 1, a: 2 } }); // the input is not changed
    const odd = { b: Number.NaN, a: 1 };
    expect(inCanonicalOrder(odd)).toBe(odd);
  });
});

describe("pythonJson's fast path", () => {
  const expectSamePython = (v: unknown): void =>
    expect(outcome(() => pythonJson(v))).toEqual(outcome(() => referencePythonJson(v)));

  it("equals the generic Python encoder for arbitrary JSON, any string units and doubles (property)", () => {
    const value = fc.jsonValue({ maxDepth: 5, stringUnit: "binary" });
    const ascii = fc.jsonValue({ maxDepth: 5, stringUnit: "binary-ascii" });
    const keyed = fc.dictionary(fc.string({ unit: "binary-ascii" }), ascii, { maxKeys: 8 });
    fc.assert(
      fc.property(fc.oneof(value, ascii, keyed), fc.double(), (v, d) => {
        expectSamePython(v);
        expectSamePython({ v, d });
      }),
      { numRuns: 1500 },
    );
  });

  it("equals the generic Python encoder where JSON.stringify and Python differ", () => {
    const odd: unknown[] = [
      { b: 1, a: 2 },
      { s: "\u007f" }, // DEL: Python escapes it, JSON.stringify does not
      { s: "caf\u00e9" },
      { "\u00e9": 1 }, // a non-ASCII key
      { s: '\u0000\u001f\b\f\n\r\t"\\/ ~' }, // escaped alike by both
      { n: -0 },
      { n: 1.0, m: 1e21, k: 1e-5, j: 1e16, i: 0.0001, h: 123.456, g: 2 ** 53 + 2, f: 5e-324 },
      { "\ud83d\ude00": 1, "\uffff": 2 },
      JSON.parse('{"__proto__": {"x": 1}, "a": 1}'),
      { arr: [1, undefined, 2] },
      { n: Number.NaN },
    ];
    for (const v of odd) expectSamePython(v);
  });
});
