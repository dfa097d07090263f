import { PyException } from "./errors.js";
import { braceFormat, formatSpec } from "./format.js";
import {
  type Budget,
  compare,
  eq,
  iterate,
  type Kwargs,
  num,
  PyBytes,
  PyDict,
  PyFunc,
  PyList,
  PyModule,
  PyRange,
  PySet,
  PyTuple,
  type PyValue,
  repr,
  str,
  toIndex,
  truthy,
  typeError,
  typeName,
  valueError,
} from "./values.js";

/** Python builtins that exist but are outside the subset: using one names it in the error. */
export const UNSUPPORTED_BUILTINS = new Set(
  "map filter open exec eval compile __import__ getattr setattr delattr hasattr globals locals vars type isinstance issubclass iter next object super property staticmethod classmethod input id hash round divmod pow callable memoryview bytearray frozenset complex slice breakpoint help dir".split(
    " ",
  ),
);

function arity(name: string, args: PyValue[], min: number, max: number): void {
  if (args.length < min || args.length > max) {
    throw typeError(
      `${name}() takes ${min === max ? min : `${min} to ${max}`} arguments (${args.length} given)`,
    );
  }
}

function noKwargs(name: string, kw: Kwargs): void {
  if (kw.size) throw typeError(`${name}() takes no keyword arguments`);
}

export function fn(name: string, call: (args: PyValue[], kw: Kwargs) => PyValue): PyFunc {
  return new PyFunc(name, call);
}

/** A builtin that checks its positional count (and optionally refuses keywords) before running. */
export function checked(
  name: string,
  call: (args: PyValue[], kw: Kwargs) => PyValue,
  min: number,
  max: number,
  kwargs = true,
): PyFunc {
  return fn(name, (args, kw) => {
    if (!kwargs) noKwargs(name, kw);
    arity(name, args, min, max);
    return call(args, kw);
  });
}

function toDict(src: PyValue, budget: Budget): PyDict {
  const d = new PyDict();
  if (src instanceof PyDict) {
    for (const [k, v] of src.map.values()) d.set(k, v);
    return d;
  }
  for (const pair of iterate(src, budget)) {
    const kv = iterate(pair, budget);
    if (kv.length !== 2) {
      throw valueError(`dictionary update sequence element has length ${kv.length}; 2 is required`);
    }
    d.set(kv[0]!, kv[1]!);
  }
  return d;
}

export function dictUpdate(d: PyDict, args: PyValue[], kw: Kwargs, budget: Budget): void {
  arity("update", args, 0, 1);
  if (args[0] !== undefined) for (const [k, v] of toDict(args[0], budget).map.values()) d.set(k, v);
  for (const [k, v] of kw) d.set(k, v);
}

function toInt(v: PyValue, base?: PyValue): bigint {
  if (typeof v === "string") {
    const b = base === undefined ? 10 : Number(toIndex(base, "base"));
    const s = v.trim().replaceAll("_", "");
    const digits =
      b === 16
        ? /^[-+]?(0x)?[0-9a-f]+$/i
        : b === 8
          ? /^[-+]?(0o)?[0-7]+$/i
          : b === 2
            ? /^[-+]?(0b)?[01]+$/i
            : /^[-+]?\d+$/;
    if (![2, 8, 10, 16].includes(b) || !digits.test(s)) {
      throw valueError(`invalid literal for int() with base ${b}: ${repr(v)}`);
    }
    const neg = s.startsWith("-");
    const body = s.replace(/^[-+]/, "").replace(/^0[xob]/i, "");
    const prefix = b === 16 ? "0x" : b === 8 ? "0o" : b === 2 ? "0b" : "";
    const n = BigInt(prefix + body);
    return neg ? -n : n;
  }
  const n = num(v);
  if (n === undefined) throw typeError(`int() argument must be a string or a number, not '${typeName(v)}'`);
  if (typeof n === "bigint") return n;
  if (!Number.isFinite(n)) throw new PyException("OverflowError", "cannot convert float infinity to integer");
  return BigInt(Math.trunc(n));
}

function toFloat(v: PyValue): number {
  if (typeof v === "string") {
    const s = v.trim().toLowerCase().replaceAll("_", "");
    if (/^[-+]?(inf|infinity)$/.test(s)) return s.startsWith("-") ? -Infinity : Infinity;
    if (/^[-+]?nan$/.test(s)) return Number.NaN;
    if (!/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/.test(s))
      throw valueError(`could not convert string to float: ${repr(v)}`);
    return Number(s);
  }
  const n = num(v);
  if (n === undefined)
    throw typeError(`float() argument must be a string or a real number, not '${typeName(v)}'`);
  return Number(n);
}

function sortedList(items: PyValue[], kw: Kwargs): PyValue[] {
  for (const k of kw.keys()) {
    if (k === "key")
      throw typeError("sorted(key=...) needs a function, which the restricted evaluator does not support");
    if (k !== "reverse") throw typeError(`'${k}' is an invalid keyword argument for sort()`);
  }
  const out = [...items].sort((a, b) => compare(a, b));
  return truthy(kw.get("reverse") ?? false) ? out.reverse() : out;
}

function extreme(name: string, args: PyValue[], kw: Kwargs, budget: Budget, sign: number): PyValue {
  const items = args.length === 1 ? iterate(args[0]!, budget) : args;
  if (items.length === 0) {
    const d = kw.get("default");
    if (d !== undefined) return d;
    throw valueError(`${name}() arg is an empty sequence`);
  }
  return items.reduce((best, x) => (compare(x, best) * sign > 0 ? x : best));
}

function sum(args: PyValue[], budget: Budget): PyValue {
  arity("sum", args, 1, 2);
  let acc: PyValue = args[1] ?? 0n;
  for (const x of iterate(args[0]!, budget)) {
    const a = num(acc);
    const b = num(x);
    if (a === undefined || b === undefined)
      throw typeError(`unsupported operand type(s) for +: '${typeName(acc)}' and '${typeName(x)}'`);
    acc = typeof a === "bigint" && typeof b === "bigint" ? a + b : Number(a) + Number(b);
  }
  return acc;
}

/** The builtin namespace of the restricted evaluator. */
export function makeBuiltins(budget: Budget): Map<string, PyValue> {
  const b = new Map<string, PyValue>();
  const def = (
    name: string,
    call: (args: PyValue[], kw: Kwargs) => PyValue,
    [min, max]: [number, number] = [0, Number.POSITIVE_INFINITY],
    kwargs = true,
  ): void => {
    b.set(name, checked(name, call, min, max, kwargs));
  };
  def("dict", (args, kw) => {
    arity("dict", args, 0, 1);
    const d = args[0] === undefined ? new PyDict() : toDict(args[0], budget);
    for (const [k, v] of kw) d.set(k, v);
    return d;
  });
  def("list", (args) => new PyList(args[0] === undefined ? [] : iterate(args[0], budget)), [0, 1], false);
  def("tuple", (args) => new PyTuple(args[0] === undefined ? [] : iterate(args[0], budget)), [0, 1], false);
  def(
    "set",
    (args) => {
      const s = new PySet();
      if (args[0] !== undefined) for (const x of iterate(args[0], budget)) s.add(x);
      return s;
    },
    [0, 1],
    false,
  );
  def(
    "range",
    (args) => {
      const n = args.map((a) => toIndex(a, "range() arguments"));
      const [start, stop, step] = n.length === 1 ? [0n, n[0]!, 1n] : [n[0]!, n[1]!, n[2] ?? 1n];
      if (step === 0n) throw valueError("range() arg 3 must not be zero");
      return new PyRange(start, stop, step);
    },
    [1, 3],
    false,
  );
  def("str", (args) => (args[0] === undefined ? "" : str(args[0])), [0, 1]);
  def("repr", (args) => repr(args[0]!), [1, 1]);
  def("int", (args) => (args[0] === undefined ? 0n : toInt(args[0], args[1])), [0, 2]);
  def("float", (args) => (args[0] === undefined ? 0 : toFloat(args[0])), [0, 1]);
  def("bool", (args) => (args[0] === undefined ? false : truthy(args[0])), [0, 1]);
  def(
    "len",
    (args) => {
      const v = args[0]!;
      if (typeof v === "string") return BigInt([...v].length);
      if (v instanceof PyBytes) return BigInt(v.s.length);
      if (v instanceof PyList || v instanceof PyTuple) return BigInt(v.items.length);
      if (v instanceof PyDict || v instanceof PySet) return BigInt(v.map.size);
      if (v instanceof PyRange) return v.length;
      throw typeError(`object of type '${typeName(v)}' has no len()`);
    },
    [1, 1],
  );
  def("sorted", (args, kw) => new PyList(sortedList(iterate(args[0]!, budget), kw)), [1, 1]);
  def("reversed", (args) => new PyList(iterate(args[0]!, budget).reverse()), [1, 1]);
  def("min", (args, kw) => extreme("min", args, kw, budget, -1));
  def("max", (args, kw) => extreme("max", args, kw, budget, 1));
  def("sum", (args) => sum(args, budget));
  def("any", (args) => iterate(args[0]!, budget).some(truthy), [1, 1]);
  def("all", (args) => iterate(args[0]!, budget).every(truthy), [1, 1]);
  def(
    "abs",
    (args) => {
      const n = num(args[0]!);
      if (n === undefined) throw typeError(`bad operand type for abs(): '${typeName(args[0]!)}'`);
      return typeof n === "bigint" ? (n < 0n ? -n : n) : Math.abs(n);
    },
    [1, 1],
  );
  def(
    "enumerate",
    (args, kw) => {
      let i = toIndex(kw.get("start") ?? args[1] ?? 0n, "start");
      return new PyList(iterate(args[0]!, budget).map((x) => new PyTuple([i++, x])));
    },
    [1, 2],
  );
  def("zip", (args) => {
    const lists = args.map((a) => iterate(a, budget));
    const n = lists.length ? Math.min(...lists.map((l) => l.length)) : 0;
    return new PyList(Array.from({ length: n }, (_, i) => new PyTuple(lists.map((l) => l[i]!))));
  });
  def("format", (args) => formatSpec(args[0]!, str(args[1] ?? ""), budget), [1, 2]);
  def("chr", (args) => {
    const n = toIndex(args[0] ?? null, "chr() argument");
    if (n < 0n || n > 0x10ffffn) throw valueError("chr() arg not in range(0x110000)");
    return String.fromCodePoint(Number(n));
  });
  def("ord", (args) => {
    const s = args[0];
    if (typeof s !== "string" || [...s].length !== 1) throw typeError("ord() expected a character");
    return BigInt(s.codePointAt(0)!);
  });
  // A config that prints is harmless; fedmsg's loader would just write to stdout.
  def("print", () => null);
  return b;
}

export interface HostFacts {
  hostname: string;
  env: Record<string, string | undefined>;
}

/** The modules a fedmsg config may import: socket (hostname) and os (environment, path joins). */
export function makeModules(facts: HostFacts): Map<string, PyModule> {
  const environ = new PyDict();
  for (const [k, v] of Object.entries(facts.env)) if (v !== undefined) environ.set(k, v);
  const path = new PyModule(
    "os.path",
    new Map<string, PyValue>([
      ["sep", "/"],
      [
        "join",
        fn("join", (args) =>
          args
            .map((a) => str(a))
            .reduce(
              (acc, p) => (p.startsWith("/") ? p : acc === "" || acc.endsWith("/") ? acc + p : `${acc}/${p}`),
              "",
            ),
        ),
      ],
      [
        "basename",
        fn(
          "basename",
          (args) =>
            str(args[0] ?? "")
              .split("/")
              .pop() ?? "",
        ),
      ],
      [
        "dirname",
        fn("dirname", (args) => {
          const s = str(args[0] ?? "");
          const i = s.lastIndexOf("/");
          return i < 0 ? "" : s.slice(0, i) || "/";
        }),
      ],
    ]),
  );
  const os = new PyModule(
    "os",
    new Map<string, PyValue>([
      ["environ", environ],
      ["path", path],
      ["sep", "/"],
      ["getenv", checked("getenv", (args) => environ.get(args[0]!) ?? args[1] ?? null, 1, 2)],
    ]),
  );
  const socket = new PyModule(
    "socket",
    new Map<string, PyValue>([
      ["gethostname", checked("gethostname", () => facts.hostname, 0, 0)],
      ["getfqdn", checked("getfqdn", (args) => (args[0] ? str(args[0]) : facts.hostname), 0, 1)],
    ]),
  );
  return new Map([
    ["os", os],
    ["os.path", path],
    ["socket", socket],
  ]);
}

export { braceFormat, eq };
