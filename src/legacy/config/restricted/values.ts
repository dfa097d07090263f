import { PyException, RestrictedError } from "./errors.js";

/**
 * Python values as the restricted evaluator holds them: None=null, bool=boolean, int=bigint,
 * float=number, str=string; containers and callables are small classes.
 */
export type PyValue =
  | null
  | boolean
  | bigint
  | number
  | string
  | PyBytes
  | PyList
  | PyTuple
  | PyDict
  | PySet
  | PyRange
  | PyFunc
  | PyModule;

export class PyBytes {
  constructor(readonly s: string) {}
}
export class PyList {
  constructor(public items: PyValue[]) {}
}
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export class PyDict {
  /** hashKey(key) -> [key, value], in insertion order like a Python 3.7+ dict. */
  readonly map = new Map<string, [PyValue, PyValue]>();
  get(k: PyValue): PyValue | undefined {
    return this.map.get(hashKey(k))?.[1];
  }
  set(k: PyValue, v: PyValue): void {
    const h = hashKey(k);
    const old = this.map.get(h);
    // Python keeps the first key object and replaces only the value.
    this.map.set(h, [old ? old[0] : k, v]);
  }
}
export class PySet {
  readonly map = new Map<string, PyValue>();
  add(v: PyValue): void {
    const h = hashKey(v);
    if (!this.map.has(h)) this.map.set(h, v);
  }
}
export class PyRange {
  constructor(
    readonly start: bigint,
    readonly stop: bigint,
    readonly step: bigint,
  ) {}
  get length(): bigint {
    const { start, stop, step } = this;
    if (step > 0n) return stop > start ? (stop - start + step - 1n) / step : 0n;
    return start > stop ? (start - stop - step - 1n) / -step : 0n;
  }
}
export type Kwargs = Map<string, PyValue>;
export class PyFunc {
  constructor(
    readonly name: string,
    readonly call: (args: PyValue[], kwargs: Kwargs) => PyValue,
  ) {}
}
export class PyModule {
  /** opaque: imported but not modelled; any use of it is an unsupported construct. */
  constructor(
    readonly name: string,
    readonly attrs: Map<string, PyValue>,
    readonly opaque = false,
  ) {}
}

/** Execution limits shared by one evaluation (steps, wall clock, sizes). */
export class Budget {
  line = 0;
  private steps = 0;
  constructor(
    readonly file: string,
    private readonly deadline: number,
    readonly maxItems = 2_000_000,
    private readonly maxSteps = 20_000_000,
  ) {}
  tick(): void {
    if (++this.steps > this.maxSteps || ((this.steps & 0x3fff) === 0 && Date.now() > this.deadline)) {
      throw new RestrictedError(
        "timeout",
        "evaluation took too long (step or time limit reached)",
        this.file,
        this.line,
      );
    }
  }
  size(n: number | bigint): void {
    if (n > this.maxItems) {
      throw new RestrictedError(
        "memory",
        `a value of ${n} items is beyond the restricted evaluator's limit`,
        this.file,
        this.line,
      );
    }
  }
}

export function typeName(v: PyValue): string {
  if (v === null) return "NoneType";
  switch (typeof v) {
    case "boolean":
      return "bool";
    case "bigint":
      return "int";
    case "number":
      return "float";
    case "string":
      return "str";
    default:
      break;
  }
  if (v instanceof PyBytes) return "bytes";
  if (v instanceof PyList) return "list";
  if (v instanceof PyTuple) return "tuple";
  if (v instanceof PyDict) return "dict";
  if (v instanceof PySet) return "set";
  if (v instanceof PyRange) return "range";
  if (v instanceof PyModule) return "module";
  return "builtin_function_or_method";
}

export const typeError = (msg: string): PyException => new PyException("TypeError", msg);
export const valueError = (msg: string): PyException => new PyException("ValueError", msg);

export function truthy(v: PyValue): boolean {
  if (v === null) return false;
  if (typeof v === "boolean") return v;
  if (typeof v === "bigint") return v !== 0n;
  if (typeof v === "number") return v !== 0;
  if (typeof v === "string") return v.length > 0;
  if (v instanceof PyBytes) return v.s.length > 0;
  if (v instanceof PyList || v instanceof PyTuple) return v.items.length > 0;
  if (v instanceof PyDict || v instanceof PySet) return v.map.size > 0;
  if (v instanceof PyRange) return v.length > 0n;
  return true;
}

/** A number view for arithmetic: bool counts as int, as in Python. */
export function num(v: PyValue): bigint | number | undefined {
  if (typeof v === "boolean") return v ? 1n : 0n;
  if (typeof v === "bigint" || typeof v === "number") return v;
  return undefined;
}

/** Key under which a value is stored in a dict/set; equal Python values (1, 1.0, True) share a key. */
export function hashKey(v: PyValue): string {
  const n = num(v);
  if (n !== undefined) {
    if (typeof n === "bigint") return `i${n}`;
    return Number.isInteger(n) && Math.abs(n) < 2 ** 63 ? `i${BigInt(n)}` : `f${n}`;
  }
  if (v === null) return "N";
  if (typeof v === "string") return `s${v}`;
  if (v instanceof PyBytes) return `b${v.s}`;
  if (v instanceof PyTuple) return `t(${v.items.map(hashKey).join("\u0000,")})`;
  if (v instanceof PyFunc || v instanceof PyModule) return `o${v.name}`;
  throw typeError(`unhashable type: '${typeName(v)}'`);
}

function tooDeep(depth: number): void {
  if (depth > 200) throw new PyException("RecursionError", "maximum recursion depth exceeded in comparison");
}

export function eq(a: PyValue, b: PyValue, depth = 0): boolean {
  tooDeep(depth);
  const x = num(a);
  const y = num(b);
  if (x !== undefined || y !== undefined) {
    if (x === undefined || y === undefined) return false;
    // biome-ignore lint/suspicious/noDoubleEquals: loose equality compares bigint with number exactly.
    return x == y;
  }
  if (a === null || typeof a === "string") return a === b;
  if (a instanceof PyBytes) return b instanceof PyBytes && a.s === b.s;
  if ((a instanceof PyList && b instanceof PyList) || (a instanceof PyTuple && b instanceof PyTuple)) {
    return a.items.length === b.items.length && a.items.every((v, i) => eq(v, b.items[i]!, depth + 1));
  }
  if (a instanceof PyDict && b instanceof PyDict) {
    if (a.map.size !== b.map.size) return false;
    for (const [h, [, v]] of a.map) {
      const o = b.map.get(h);
      if (!o || !eq(v, o[1], depth + 1)) return false;
    }
    return true;
  }
  if (a instanceof PySet && b instanceof PySet) {
    return a.map.size === b.map.size && [...a.map.keys()].every((h) => b.map.has(h));
  }
  if (a instanceof PyRange && b instanceof PyRange) return eq(rangeList(a), rangeList(b));
  return a === b;
}

function rangeList(r: PyRange): PyTuple {
  return new PyTuple([r.start, r.stop, r.step, r.length]);
}

/** Python ordering (<): numbers, strings, and lists/tuples element-wise; anything else is a TypeError. */
export function compare(a: PyValue, b: PyValue, depth = 0): number {
  tooDeep(depth);
  const x = num(a);
  const y = num(b);
  if (x !== undefined && y !== undefined) return x < y ? -1 : x > y ? 1 : 0;
  if (typeof a === "string" && typeof b === "string") return a < b ? -1 : a > b ? 1 : 0;
  if ((a instanceof PyList && b instanceof PyList) || (a instanceof PyTuple && b instanceof PyTuple)) {
    const n = Math.min(a.items.length, b.items.length);
    for (let i = 0; i < n; i++) {
      if (!eq(a.items[i]!, b.items[i]!, depth + 1)) return compare(a.items[i]!, b.items[i]!, depth + 1);
    }
    return a.items.length - b.items.length;
  }
  throw typeError(`'<' not supported between instances of '${typeName(a)}' and '${typeName(b)}'`);
}

/** repr() of a float, following Python's shortest round-trip rules (1.0, 1e-05, 1e+16, inf, nan). */
export function floatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expStr] = x.toExponential().split("e") as [string, string];
  const exp = Number(expStr);
  if (exp < -4 || exp >= 16) {
    return `${mant}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  const digits = mant.replace("-", "").replace(".", "");
  const sign = x < 0 ? "-" : "";
  if (exp >= 0) {
    const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
    const frac = digits.slice(exp + 1);
    return `${sign}${intPart}.${frac || "0"}`;
  }
  return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
}

export function strRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out + quote;
}

export function repr(v: PyValue, depth = 0): string {
  if (depth > 50) return "...";
  if (v === null) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") return floatRepr(v);
  if (typeof v === "string") return strRepr(v);
  if (v instanceof PyBytes) return `b${strRepr(v.s)}`;
  if (v instanceof PyList) return `[${v.items.map((x) => repr(x, depth + 1)).join(", ")}]`;
  if (v instanceof PyTuple) {
    const inner = v.items.map((x) => repr(x, depth + 1)).join(", ");
    return v.items.length === 1 ? `(${inner},)` : `(${inner})`;
  }
  if (v instanceof PyDict) {
    return `{${[...v.map.values()].map(([k, x]) => `${repr(k, depth + 1)}: ${repr(x, depth + 1)}`).join(", ")}}`;
  }
  if (v instanceof PySet) {
    return v.map.size ? `{${[...v.map.values()].map((x) => repr(x, depth + 1)).join(", ")}}` : "set()";
  }
  if (v instanceof PyRange)
    return v.step === 1n ? `range(${v.start}, ${v.stop})` : `range(${v.start}, ${v.stop}, ${v.step})`;
  if (v instanceof PyModule) return `<module '${v.name}'>`;
  return `<built-in function ${v.name}>`;
}

export function str(v: PyValue): string {
  return typeof v === "string" ? v : repr(v);
}

/** The items of an iterable (dict -> keys, str -> characters), checked against the size budget. */
export function iterate(v: PyValue, budget: Budget): PyValue[] {
  if (v instanceof PyList || v instanceof PyTuple) return [...v.items];
  if (typeof v === "string") return [...v];
  if (v instanceof PyDict) return [...v.map.values()].map(([k]) => k);
  if (v instanceof PySet) return [...v.map.values()];
  if (v instanceof PyBytes) return [...v.s].map((c) => BigInt(c.charCodeAt(0)));
  if (v instanceof PyRange) {
    budget.size(v.length);
    const out: PyValue[] = [];
    for (let i = 0n, x = v.start; i < v.length; i++, x += v.step) out.push(x);
    return out;
  }
  throw typeError(`'${typeName(v)}' object is not iterable`);
}

export function toIndex(v: PyValue, what: string): bigint {
  if (typeof v === "bigint") return v;
  if (typeof v === "boolean") return v ? 1n : 0n;
  throw typeError(`${what} must be integers, not ${typeName(v)}`);
}
