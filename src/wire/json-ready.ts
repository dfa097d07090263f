/**
 * The fast path of canonicalJson (RFC 8785): native JSON.stringify writes exactly the canonical text of a
 * value whose objects already have their keys in JCS order, since JCS writes strings and numbers as
 * ECMAScript does (pythonJson takes it too, for values whose numbers Python writes as JavaScript does,
 * ReadyRules.plainNumber, and whose text turns out to be ASCII). `ready` checks that in one walk without
 * building any string, and copies only the objects whose keys are out of order. Native JSON.stringify is
 * several times faster than the generic encoder in json.ts and leaves far less garbage, and every published
 * message is encoded once per wire format, so on a busy broker this is among the largest costs
 * (bench/RESULTS.md).
 */

/** The key order the fast path must produce. */
export interface ReadyRules {
  /** Whether `a` sorts strictly before `b`. */
  before(a: string, b: string): boolean;
  sort(keys: string[]): string[];
  /** Whether JSON.stringify writes this finite number as the dialect does; any when absent. */
  plainNumber?(n: number): boolean;
  /**
   * Fall back on an object field that is `undefined` instead of leaving it out as both encoders do: a body
   * handed to the client by hand must be checked (it is refused there, as createMessage refuses it).
   */
  undefinedFallsBack?: boolean;
}

/** ready() could not guarantee the fast path's output: use the generic encoder (which also throws its errors). */
export const FALLBACK: unique symbol = Symbol("fallback");

/** The generic encoder's limit: deeper values go to it, which throws. */
const MAX_DEPTH = 256;
/** Keys V8 orders numerically ahead of the others: a copy in sorted order would not keep that order. */
const INDEX_KEY = /^(?:0|[1-9][0-9]*)$/;

/**
 * `v`, or a copy with objects' keys re-inserted in the dialect's order, such that JSON.stringify of the
 * result is the canonical text; FALLBACK when that cannot be guaranteed (numbers the dialect writes
 * differently, non-finite numbers, toJSON, class instances, holes, functions, numeric keys out of order,
 * a `__proto__` key to move, nesting deeper than the generic encoder allows).
 */
export function ready(v: unknown, rules: ReadyRules, depth = 0): unknown {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return Number.isFinite(v) && (rules.plainNumber === undefined || rules.plainNumber(v)) ? v : FALLBACK;
    case "object":
      if (v === null) return v;
      if (depth >= MAX_DEPTH) return FALLBACK;
      return Array.isArray(v)
        ? arrayReady(v, rules, depth)
        : objectReady(v as Record<string, unknown>, rules, depth);
    default:
      return FALLBACK;
  }
}

function arrayReady(a: unknown[], rules: ReadyRules, depth: number): unknown {
  let out: unknown[] | undefined;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (x === undefined) return FALLBACK; // a hole or undefined: JSON.stringify writes null, the encoder throws
    const r = ready(x, rules, depth + 1);
    if (r === FALLBACK) return FALLBACK;
    if (r !== x) {
      out ??= a.slice();
      out[i] = r;
    }
  }
  return out ?? a;
}

function objectReady(obj: Record<string, unknown>, rules: ReadyRules, depth: number): unknown {
  const proto: unknown = Object.getPrototypeOf(obj);
  if (proto !== Object.prototype && proto !== null) return FALLBACK;
  let sorted = true;
  let changed: Map<string, unknown> | undefined;
  let prev: string | undefined;
  // for-in rather than Object.keys: no array per object (V8 walks its enum cache), same order for own
  // keys. A key inherited from a tampered Object.prototype is visited too; it can only make the walk
  // copy or fall back, never appear in the text: JSON.stringify and the copy below take own keys only.
  for (const k in obj) {
    const x = obj[k];
    if (x === undefined) {
      if (rules.undefinedFallsBack === true) return FALLBACK;
      continue; // both encoders leave it out
    }
    const r = ready(x, rules, depth + 1);
    if (r === FALLBACK) return FALLBACK;
    if (r !== x) {
      changed ??= new Map();
      changed.set(k, r);
    }
    if (prev !== undefined && !rules.before(prev, k)) sorted = false;
    prev = k;
  }
  // A null-prototype object is copied: JSON.stringify is much slower on dictionary-mode objects.
  if (sorted && changed === undefined && proto !== null) return obj;
  const out: Record<string, unknown> = {};
  const keys = Object.keys(obj);
  for (const k of sorted ? keys : rules.sort(keys)) {
    const x = obj[k];
    if (x === undefined) continue;
    // "__proto__" would set the copy's prototype instead of adding a key.
    if ((!sorted && INDEX_KEY.test(k)) || k === "__proto__") return FALLBACK;
    out[k] = changed?.has(k) ? changed.get(k) : x;
  }
  return out;
}
