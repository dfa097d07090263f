import { PyException } from "./errors.js";
import { percentFormat } from "./format.js";
import {
  type Budget,
  eq,
  num,
  PyBytes,
  PyDict,
  PyList,
  PyRange,
  PySet,
  PyTuple,
  type PyValue,
  repr,
  toIndex,
  typeError,
  typeName,
} from "./values.js";

const zeroDiv = (what: string): PyException => new PyException("ZeroDivisionError", what);

function unsupported(op: string, a: PyValue, b: PyValue): PyException {
  return typeError(`unsupported operand type(s) for ${op}: '${typeName(a)}' and '${typeName(b)}'`);
}

function repeat<T>(items: T[], times: PyValue, budget: Budget): T[] {
  const n = Number(toIndex(times, "can't multiply sequence by non-int; counts"));
  if (n <= 0) return [];
  budget.size(items.length * n);
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(...items);
  return out;
}

function repeatStr(s: string, times: PyValue, budget: Budget): string {
  const n = Number(toIndex(times, "can't multiply sequence by non-int; counts"));
  if (n <= 0) return "";
  budget.size(s.length * n);
  return s.repeat(n);
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}

function arith(op: string, x: bigint | number, y: bigint | number, budget: Budget): PyValue {
  if (typeof x === "bigint" && typeof y === "bigint") {
    switch (op) {
      case "+":
        return x + y;
      case "-":
        return x - y;
      case "*":
        budget.size(
          (x.toString(16).length + y.toString(16).length) * 4 > 1_000_000 ? Number.MAX_SAFE_INTEGER : 0,
        );
        return x * y;
      case "/":
        if (y === 0n) throw zeroDiv("division by zero");
        return Number(x) / Number(y);
      case "//":
        if (y === 0n) throw zeroDiv("integer division or modulo by zero");
        return floorDiv(x, y);
      case "%":
        if (y === 0n) throw zeroDiv("integer modulo by zero");
        return x - floorDiv(x, y) * y;
      case "**":
        if (y < 0n) return Number(x) ** Number(y);
        // Estimate the result's size before computing it.
        budget.size(x === 0n || x === 1n || x === -1n ? 0 : (Number(y) * x.toString(2).length) / 8);
        return x ** y;
      case "|":
        return x | y;
      case "&":
        return x & y;
      case "^":
        return x ^ y;
      case "<<":
        if (y < 0n) throw new PyException("ValueError", "negative shift count");
        budget.size(Number(y) / 8);
        return x << y;
      case ">>":
        if (y < 0n) throw new PyException("ValueError", "negative shift count");
        return x >> y;
      default:
        break;
    }
  }
  const a = Number(x);
  const b = Number(y);
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    case "/":
      if (b === 0) throw zeroDiv("float division by zero");
      return a / b;
    case "//":
      if (b === 0) throw zeroDiv("float floor division by zero");
      return Math.floor(a / b);
    case "%": {
      if (b === 0) throw zeroDiv("float modulo");
      const r = a % b;
      return r !== 0 && r < 0 !== b < 0 ? r + b : r;
    }
    case "**":
      return a ** b;
    default:
      throw typeError(`unsupported operand type(s) for ${op}: 'float'`);
  }
}

/** A binary operator with Python semantics for the supported types. */
export function binop(op: string, a: PyValue, b: PyValue, budget: Budget): PyValue {
  const x = num(a);
  const y = num(b);
  if (x !== undefined && y !== undefined) return arith(op, x, y, budget);
  if (op === "%" && typeof a === "string") return percentFormat(a, b, budget);
  if (op === "+") {
    if (typeof a === "string" && typeof b === "string") {
      budget.size(a.length + b.length);
      return a + b;
    }
    if (a instanceof PyList && b instanceof PyList) {
      budget.size(a.items.length + b.items.length);
      return new PyList([...a.items, ...b.items]);
    }
    if (a instanceof PyTuple && b instanceof PyTuple) return new PyTuple([...a.items, ...b.items]);
    if (a instanceof PyBytes && b instanceof PyBytes) return new PyBytes(a.s + b.s);
  }
  if (op === "*") {
    if (typeof a === "string" && y !== undefined) return repeatStr(a, b, budget);
    if (typeof b === "string" && x !== undefined) return repeatStr(b, a, budget);
    if (a instanceof PyList && y !== undefined) return new PyList(repeat(a.items, b, budget));
    if (b instanceof PyList && x !== undefined) return new PyList(repeat(b.items, a, budget));
    if (a instanceof PyTuple && y !== undefined) return new PyTuple(repeat(a.items, b, budget));
  }
  if (op === "|" && a instanceof PyDict && b instanceof PyDict) {
    const d = new PyDict();
    for (const [k, v] of [...a.map.values(), ...b.map.values()]) d.set(k, v);
    return d;
  }
  if (a instanceof PySet && b instanceof PySet && ["|", "&", "-", "^"].includes(op)) {
    const out = new PySet();
    const inA = (v: PyValue): boolean => contains(a, v);
    const inB = (v: PyValue): boolean => contains(b, v);
    const all = [...a.map.values(), ...b.map.values()];
    for (const v of all) {
      const keep =
        op === "|"
          ? true
          : op === "&"
            ? inA(v) && inB(v)
            : op === "-"
              ? inA(v) && !inB(v)
              : inA(v) !== inB(v);
      if (keep) out.add(v);
    }
    return out;
  }
  throw unsupported(op, a, b);
}

export function contains(container: PyValue, v: PyValue): boolean {
  if (typeof container === "string") {
    if (typeof v !== "string")
      throw typeError(`'in <string>' requires string as left operand, not ${typeName(v)}`);
    return container.includes(v);
  }
  if (container instanceof PyList || container instanceof PyTuple)
    return container.items.some((x) => eq(x, v));
  if (container instanceof PyDict) return container.get(v) !== undefined;
  if (container instanceof PySet) return [...container.map.values()].some((x) => eq(x, v));
  if (container instanceof PyRange) {
    const n = num(v);
    if (typeof n !== "bigint") return false;
    const { start, stop, step } = container;
    const inside = step > 0n ? n >= start && n < stop : n <= start && n > stop;
    return inside && (n - start) % step === 0n;
  }
  throw typeError(`argument of type '${typeName(container)}' is not iterable`);
}

type Index = PyValue | { slice: [PyValue, PyValue, PyValue] };

function isSlice(i: Index): i is { slice: [PyValue, PyValue, PyValue] } {
  return i !== null && typeof i === "object" && "slice" in i;
}

function position(i: PyValue, len: number, what: string): number {
  const n = Number(toIndex(i, `${what} indices`));
  const at = n < 0 ? len + n : n;
  if (at < 0 || at >= len) throw new PyException("IndexError", `${what} index out of range`);
  return at;
}

function sliceOf<T>(items: T[], [lo, hi, st]: [PyValue, PyValue, PyValue]): T[] {
  const len = items.length;
  const step = st === null ? 1 : Number(toIndex(st, "slice indices"));
  if (step === 0) throw new PyException("ValueError", "slice step cannot be zero");
  const clamp = (v: PyValue, dflt: number): number => {
    if (v === null) return dflt;
    let n = Number(toIndex(v, "slice indices"));
    if (n < 0) n += len;
    return step > 0 ? Math.max(0, Math.min(len, n)) : Math.max(-1, Math.min(len - 1, n));
  };
  const start = clamp(lo, step > 0 ? 0 : len - 1);
  const stop = clamp(hi, step > 0 ? len : -1);
  const out: T[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(items[i]!);
  return out;
}

export function getItem(obj: PyValue, idx: Index): PyValue {
  if (obj instanceof PyDict) {
    if (isSlice(idx)) throw typeError("unhashable type: 'slice'");
    const v = obj.get(idx);
    if (v === undefined) throw new PyException("KeyError", repr(idx));
    return v;
  }
  if (typeof obj === "string") {
    const chars = [...obj];
    return isSlice(idx) ? sliceOf(chars, idx.slice).join("") : chars[position(idx, chars.length, "string")]!;
  }
  if (obj instanceof PyList || obj instanceof PyTuple) {
    if (isSlice(idx)) {
      const items = sliceOf(obj.items, idx.slice);
      return obj instanceof PyList ? new PyList(items) : new PyTuple(items);
    }
    return obj.items[position(idx, obj.items.length, obj instanceof PyList ? "list" : "tuple")]!;
  }
  if (obj instanceof PyRange) {
    const n = position(isSlice(idx) ? null : idx, Number(obj.length), "range");
    return obj.start + BigInt(n) * obj.step;
  }
  throw typeError(`'${typeName(obj)}' object is not subscriptable`);
}

export function setItem(obj: PyValue, idx: Index, v: PyValue): void {
  if (isSlice(idx)) throw typeError("slice assignment is not supported by the restricted evaluator");
  if (obj instanceof PyDict) {
    obj.set(idx, v);
    return;
  }
  if (obj instanceof PyList) {
    obj.items[position(idx, obj.items.length, "list assignment")] = v;
    return;
  }
  throw typeError(`'${typeName(obj)}' object does not support item assignment`);
}

export function delItem(obj: PyValue, idx: Index): void {
  if (isSlice(idx)) throw typeError("slice deletion is not supported by the restricted evaluator");
  if (obj instanceof PyDict) {
    if (obj.get(idx) === undefined) throw new PyException("KeyError", repr(idx));
    for (const [h, [k]] of obj.map) if (eq(k, idx)) obj.map.delete(h);
    return;
  }
  if (obj instanceof PyList) {
    obj.items.splice(position(idx, obj.items.length, "list assignment"), 1);
    return;
  }
  throw typeError(`'${typeName(obj)}' object doesn't support item deletion`);
}
