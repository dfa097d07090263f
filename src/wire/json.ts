/**
 * The two canonical JSON encodings herald needs:
 * - `canonicalJson`: herald's own (RFC 8785 JCS): keys sorted by UTF-16 code units, no whitespace,
 *   ECMAScript number and string forms. Any language with a JCS library reproduces it.
 * - `pythonJson`: exactly what fedmsg emits (`simplejson` with `sort_keys=True, separators=(',', ':')`,
 *   `ensure_ascii=True`): keys sorted by code point, non-ASCII escaped as `\uXXXX`, Python float repr.
 */

import { FALLBACK, type ReadyRules, ready } from "./json-ready.js";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/**
 * A body type the compiler can check as JSON without an index signature: `T` is accepted when each of its
 * fields is JSON (null, boolean, number, string, arrays and objects of those), so an `interface Build {...}`
 * can be published as it is (an interface never satisfies JsonObject's index signature, which made users
 * cast). Dates, Maps, functions, bigints and fields that may be `undefined` do not fit, as the broker
 * would refuse them; optional fields do. Used as `T extends JsonShaped<T> & NotArray`.
 */
export type JsonShaped<T> = { [K in keyof T]: JsonShapedValue<T[K]> };
// JsonValue first: a value already typed as JSON (JsonObject's own index signature) ends the recursion.
type JsonShapedValue<V> = V extends JsonValue
  ? V
  : V extends (...args: never[]) => unknown
    ? never
    : V extends readonly unknown[]
      ? { [I in keyof V]: JsonShapedValue<V[I]> }
      : V extends object
        ? JsonShaped<V>
        : never;
/** A body is a JSON object, never an array (JsonShaped alone would let an array through). */
export type NotArray = { readonly [Symbol.iterator]?: never };

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function canonicalJson(value: unknown): string {
  const r = ready(value, JCS);
  return r === FALLBACK ? encode(value, 0, JCS) : JSON.stringify(r);
}

/**
 * `value` with every object's keys in canonical (JCS) order: itself when they already are, else a copy
 * (unchanged when the value holds something the fast path cannot vouch for). Key order means nothing in
 * JSON, and every wire format herald writes is sorted; a message whose body is put in order once, when
 * the broker accepts it, then takes the encoders' fast paths with no copying or sorting for each format.
 */
export function inCanonicalOrder<T>(value: T): T {
  const r = ready(value, JCS);
  return r === FALLBACK ? value : (r as T);
}

/**
 * inCanonicalOrder, calling `slow(value)` first when the fast path cannot vouch for the value (it holds
 * something JSON.stringify would write differently or not at all, e.g. a Date, a BigInt, a non-finite
 * number or an `undefined` field): `slow` may throw to refuse it. Costs nothing beyond inCanonicalOrder's one walk.
 */
export function inCanonicalOrderOr<T>(value: T, slow: (value: T) => void): T {
  const r = ready(value, JCS_UNDEFINED_CHECKED);
  if (r !== FALLBACK) return r as T;
  slow(value);
  return value;
}

/**
 * The fast path too, when every string is ASCII and every number one Python writes as JavaScript does
 * (nearly every fedmsg envelope). The generic encoder's string concatenation was 1.9 KB of garbage per
 * message on a broker publishing the legacy format, its largest single source.
 */
export function pythonJson(value: unknown): string {
  const r = ready(value, PYTHON_FAST);
  if (r !== FALLBACK) {
    // One look at the text rather than a test per string, keys and values alike: a UTF-8 length equal to
    // the UTF-16 length means no code unit from U+0080 up (4x faster than a regular expression).
    const text = JSON.stringify(r);
    if (Buffer.byteLength(text, "utf8") === text.length && !text.includes("\u007f")) return text;
  }
  return encode(value, 0, PYTHON);
}

/** The generic Python-dialect encoder alone: the reference the tests hold pythonJson's fast path to. */
export function referencePythonJson(value: unknown): string {
  return encode(value, 0, PYTHON);
}

/** The generic JCS encoder alone, without the fast path: the reference the tests hold the fast path to. */
export function referenceCanonicalJson(value: unknown): string {
  return encode(value, 0, JCS);
}

/** What differs between the two encodings: how strings and numbers are written, and (ReadyRules) key order. */
interface Dialect extends ReadyRules {
  str(s: string): string;
  num(n: number): string;
}

const JCS: Dialect = {
  str: (s) => JSON.stringify(s),
  num: (n) => jsNumber(n),
  // JCS orders keys by UTF-16 code units: JavaScript's default string comparison.
  before: (a, b) => a < b,
  sort: (keys) => keys.sort(),
};

/** JCS for inCanonicalOrderOr: an `undefined` field goes to `slow`, which refuses it, instead of vanishing. */
const JCS_UNDEFINED_CHECKED: ReadyRules = { before: JCS.before, sort: JCS.sort, undefinedFallsBack: true };

const PYTHON: Dialect = {
  str: (s) => pythonString(s),
  num: (n) => pythonNumber(n),
  before: (a, b) => compareCodePoints(a, b) < 0,
  sort: (keys) => keys.sort(compareCodePoints),
};

/**
 * The fast path's rules for pythonJson, whose text is used only when it is ASCII without U+007F: from U+007F
 * up, Python's ensure_ascii escapes a character and JSON.stringify does not; below, both write it alike,
 * escaped (`\n`, `\u001f`, `\"`) or not. So keys are ASCII too, and for them UTF-16 code unit order (JCS's)
 * is code point order. Numbers: as pythonNumber writes them, integers below 1e21 as digits (but -0 is
 * "-0.0"), other values in the range where both languages write fixed notation with the same shortest digits.
 */
const PYTHON_FAST: ReadyRules = {
  before: JCS.before,
  sort: JCS.sort,
  plainNumber: (n) => {
    const abs = Math.abs(n);
    return Number.isInteger(n) ? abs < 1e21 && !Object.is(n, -0) : abs >= 1e-4 && abs < 1e16;
  },
};

const MAX_DEPTH = 256;

/*
 * Every published message is encoded once per wire format; on a busy broker this walk is among the largest
 * costs. Hence string concatenation (V8 ropes) rather than parts and join, and keys sorted only when they are
 * not already in order.
 */
function encode(v: unknown, depth: number, d: Dialect): string {
  switch (typeof v) {
    case "string":
      return d.str(v);
    case "number":
      return d.num(v);
    case "boolean":
      return v ? "true" : "false";
    case "object": {
      if (v === null) return "null";
      if (depth > MAX_DEPTH) throw tooDeep();
      if (Array.isArray(v)) {
        let out = "[";
        for (let i = 0; i < v.length; i++) out += (i > 0 ? "," : "") + encode(v[i], depth + 1, d);
        return `${out}]`;
      }
      const obj = v as Record<string, unknown>;
      // A Date, Map, Set, Buffer or class instance has no JSON form of its own here (toJSON is not
      // honoured): its own keys would be written, `{}` for a Date or Map, and the value lost silently.
      const proto: unknown = Object.getPrototypeOf(obj);
      if (proto !== Object.prototype && proto !== null) throw notPlain(obj);
      const keys = sortedKeys(obj, d);
      let out = "{";
      let first = true;
      for (const k of keys) {
        const item = obj[k];
        if (item === undefined) continue;
        out += `${first ? "" : ","}${d.str(k)}:${encode(item, depth + 1, d)}`;
        first = false;
      }
      return `${out}}`;
    }
    default:
      throw cannotEncode(v);
  }
}

function tooDeep(): TypeError {
  return new TypeError(`JSON nesting deeper than ${MAX_DEPTH} levels`);
}

function notPlain(obj: object): TypeError {
  const kind = (obj.constructor as { name?: unknown } | undefined)?.name;
  const what = typeof kind === "string" && kind !== "" ? `a ${kind}` : "an object that is not plain";
  return new TypeError(
    `cannot encode ${what} as JSON: only plain objects, arrays, strings, finite numbers, booleans and null travel; convert it first (a Date with toISOString(), a Map with Object.fromEntries())`,
  );
}

function cannotEncode(v: unknown): TypeError {
  return new TypeError(`cannot encode a ${v === undefined ? "undefined" : typeof v} as JSON`);
}

/** The object's keys in the dialect's order; most objects already are, which costs one pass to see. */
function sortedKeys(obj: object, d: Dialect): string[] {
  const keys = Object.keys(obj);
  for (let i = 1; i < keys.length; i++) if (!d.before(keys[i - 1]!, keys[i]!)) return d.sort(keys);
  return keys;
}

function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // Below the surrogates, code units are code points; past them, compare whole code points.
    return x < 0xd800 && y < 0xd800 ? x - y : compareByCodePoint(a, b);
  }
  return a.length - b.length;
}

function compareByCodePoint(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done ? (y.done ? 0 : -1) : 1;
    const cx = x.value.codePointAt(0)!;
    const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx - cy;
  }
}

function jsNumber(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError(`cannot encode ${n} as JSON`);
  return JSON.stringify(n);
}

/**
 * Python's json module writes an int as its digits and a float as `repr(float)`. A JSON number
 * written without fraction or exponent and below 1e21 parses as an int in Python, so that is how
 * integral values travel; everything else takes the float form.
 */
export function pythonNumber(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError(`cannot encode ${n} as JSON`);
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return Object.is(n, -0) ? "-0.0" : String(n);
  return pythonFloatRepr(n);
}

/** `repr(float)` of CPython: shortest round-trip digits, fixed notation for exponents in [-4, 16). */
export function pythonFloatRepr(n: number): string {
  if (Object.is(n, -0)) return "-0.0";
  if (n === 0) return "0.0";
  // Both languages write the shortest round-trip digits; where both use fixed notation (JavaScript from
  // 1e-7 to 1e21, Python from 1e-4 to 1e16) a non-integral value is written the same way.
  const abs = Math.abs(n);
  if (abs >= 1e-4 && abs < 1e16 && !Number.isInteger(n)) return String(n);
  const [mant = "0", expStr = "0"] = n.toExponential().split("e");
  const exp = Number(expStr);
  const neg = mant.startsWith("-");
  const digits = mant.replace("-", "").replace(".", "");
  let body: string;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
      const frac = digits.slice(exp + 1);
      body = `${intPart}.${frac === "" ? "0" : frac}`;
    } else {
      body = `0.${"0".repeat(-exp - 1)}${digits}`;
    }
  } else {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp);
    body = `${m}e${exp < 0 ? "-" : "+"}${e < 10 ? `0${e}` : e}`;
  }
  return neg ? `-${body}` : body;
}

const PY_SHORT_ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

/** Printable ASCII other than `"` and `\\`: written as it is. */
const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Python `json.dumps(s, ensure_ascii=True)`: escapes everything outside printable ASCII. */
export function pythonString(s: string): string {
  if (PLAIN_ASCII.test(s)) return `"${s}"`;
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    const code = s.charCodeAt(i);
    const short = PY_SHORT_ESCAPES[ch];
    if (short !== undefined) out += short;
    else if (code >= 0x20 && code <= 0x7e) out += ch;
    // UTF-16 code units are exactly Python's surrogate-pair escapes for astral characters.
    else out += `\\u${code.toString(16).padStart(4, "0")}`;
  }
  return `${out}"`;
}

/** Parse JSON text, turning SyntaxError into a message that names what was parsed. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SyntaxError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}
