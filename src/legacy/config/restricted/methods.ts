import { dictUpdate, fn } from "./builtins.js";
import { PyException, RestrictedError } from "./errors.js";
import { braceFormat } from "./format.js";
import {
  type Budget,
  compare,
  eq,
  iterate,
  type Kwargs,
  PyDict,
  PyList,
  PyModule,
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

type Method = (self: never, args: PyValue[], kw: Kwargs, budget: Budget) => PyValue;

function s(v: PyValue | undefined, what: string): string {
  if (typeof v !== "string") throw typeError(`${what} must be str, not ${typeName(v ?? null)}`);
  return v;
}

function whitespaceSplit(text: string, max: number, fromRight: boolean): string[] {
  const words = text.split(/\s+/).filter((w) => w !== "");
  if (max < 0 || words.length <= max + 1) return words;
  if (!fromRight) {
    // Keep the remainder's original spacing after the max-th split.
    const out: string[] = [];
    let rest = text.replace(/^\s+/, "");
    for (let i = 0; i < max; i++) {
      const m = /\s+/.exec(rest)!;
      out.push(rest.slice(0, m.index));
      rest = rest.slice(m.index + m[0].length);
    }
    return [...out, rest];
  }
  const out: string[] = [];
  let rest = text.replace(/\s+$/, "");
  for (let i = 0; i < max; i++) {
    const m = /\s+(?=\S*$)/.exec(rest)!;
    out.unshift(rest.slice(m.index + m[0].length));
    rest = rest.slice(0, m.index);
  }
  return [rest, ...out];
}

function split(self: string, args: PyValue[], kw: Kwargs, fromRight: boolean): PyValue {
  const sep = kw.get("sep") ?? args[0] ?? null;
  const max = Number(toIndex(kw.get("maxsplit") ?? args[1] ?? -1n, "maxsplit"));
  if (sep === null) return new PyList(whitespaceSplit(self, max, fromRight));
  const sp = s(sep, "separator");
  if (sp === "") throw valueError("empty separator");
  const parts = self.split(sp);
  if (max < 0 || parts.length <= max + 1) return new PyList(parts);
  return new PyList(
    fromRight
      ? [parts.slice(0, parts.length - max).join(sp), ...parts.slice(parts.length - max)]
      : [...parts.slice(0, max), parts.slice(max).join(sp)],
  );
}

function stripChars(self: string, chars: PyValue | undefined, left: boolean, right: boolean): string {
  const set = chars === undefined || chars === null ? null : new Set(s(chars, "strip arg"));
  const strip = (c: string): boolean => (set ? set.has(c) : /\s/.test(c));
  const cs = [...self];
  let a = 0;
  let b = cs.length;
  if (left) while (a < b && strip(cs[a]!)) a++;
  if (right) while (b > a && strip(cs[b - 1]!)) b--;
  return cs.slice(a, b).join("");
}

function affix(arg: PyValue | undefined, test: (x: string) => boolean): boolean {
  if (arg instanceof PyTuple) return arg.items.some((x) => test(s(x, "prefix")));
  return test(s(arg, "prefix"));
}

const STR: Record<string, (self: string, args: PyValue[], kw: Kwargs, budget: Budget) => PyValue> = {
  format: (self, args, kw, budget) => braceFormat(self, args, kw, budget),
  join: (self, args, _kw, budget) => {
    const parts = iterate(args[0] ?? null, budget).map((x, i) => {
      if (typeof x !== "string")
        throw typeError(`sequence item ${i}: expected str instance, ${typeName(x)} found`);
      return x;
    });
    const out = parts.join(self);
    budget.size(out.length);
    return out;
  },
  split: (self, args, kw) => split(self, args, kw, false),
  rsplit: (self, args, kw) => split(self, args, kw, true),
  strip: (self, args) => stripChars(self, args[0], true, true),
  lstrip: (self, args) => stripChars(self, args[0], true, false),
  rstrip: (self, args) => stripChars(self, args[0], false, true),
  replace: (self, args, _kw, budget) => {
    const [from, to] = [s(args[0], "replace() argument 1"), s(args[1], "replace() argument 2")];
    const count = Number(toIndex(args[2] ?? -1n, "count"));
    const parts = self.split(from);
    const n = count < 0 ? parts.length - 1 : Math.min(count, parts.length - 1);
    const out =
      parts.slice(0, n + 1).join(to) + (n < parts.length - 1 ? from + parts.slice(n + 1).join(from) : "");
    budget.size(out.length);
    return out;
  },
  lower: (self) => self.toLowerCase(),
  upper: (self) => self.toUpperCase(),
  startswith: (self, args) => affix(args[0], (x) => self.startsWith(x)),
  endswith: (self, args) => affix(args[0], (x) => self.endsWith(x)),
  zfill: (self, args) => {
    const w = Number(toIndex(args[0] ?? null, "width"));
    const sign = /^[-+]/.test(self) ? self[0]! : "";
    return sign + self.slice(sign.length).padStart(w - sign.length, "0");
  },
  find: (self, args) => BigInt(self.indexOf(s(args[0], "find() argument"))),
  count: (self, args) => {
    const sub = s(args[0], "count() argument");
    return BigInt(sub === "" ? [...self].length + 1 : self.split(sub).length - 1);
  },
  isdigit: (self) => /^\d+$/.test(self),
};

function listIndex(list: PyList, i: PyValue): number {
  const n = Number(toIndex(i, "list indices"));
  const at = n < 0 ? list.items.length + n : n;
  if (at < 0 || at >= list.items.length) throw new PyException("IndexError", "list index out of range");
  return at;
}

const LIST: Record<string, (self: PyList, args: PyValue[], kw: Kwargs, budget: Budget) => PyValue> = {
  append: (self, args, _kw, budget) => {
    budget.size(self.items.length + 1);
    self.items.push(args[0] ?? null);
    return null;
  },
  extend: (self, args, _kw, budget) => {
    const more = iterate(args[0] ?? null, budget);
    budget.size(self.items.length + more.length);
    self.items.push(...more);
    return null;
  },
  insert: (self, args) => {
    const n = Number(toIndex(args[0] ?? null, "index"));
    const at = Math.max(0, Math.min(self.items.length, n < 0 ? self.items.length + n : n));
    self.items.splice(at, 0, args[1] ?? null);
    return null;
  },
  pop: (self, args) => {
    if (self.items.length === 0) throw new PyException("IndexError", "pop from empty list");
    return self.items.splice(listIndex(self, args[0] ?? -1n), 1)[0]!;
  },
  remove: (self, args) => {
    const i = self.items.findIndex((x) => eq(x, args[0] ?? null));
    if (i < 0) throw valueError("list.remove(x): x not in list");
    self.items.splice(i, 1);
    return null;
  },
  index: (self, args) => {
    const i = self.items.findIndex((x) => eq(x, args[0] ?? null));
    if (i < 0) throw valueError(`${repr(args[0] ?? null)} is not in list`);
    return BigInt(i);
  },
  count: (self, args) => BigInt(self.items.filter((x) => eq(x, args[0] ?? null)).length),
  copy: (self) => new PyList([...self.items]),
  sort: (self, _args, kw) => {
    if (kw.has("key"))
      throw typeError("sort(key=...) needs a function, which the restricted evaluator does not support");
    self.items.sort((a, b) => compare(a, b));
    if (truthy(kw.get("reverse") ?? false)) self.items.reverse();
    return null;
  },
};

const DICT: Record<string, (self: PyDict, args: PyValue[], kw: Kwargs, budget: Budget) => PyValue> = {
  get: (self, args) => {
    const v = self.get(args[0] ?? null);
    return v !== undefined ? v : (args[1] ?? null);
  },
  keys: (self) => new PyList([...self.map.values()].map(([k]) => k)),
  values: (self) => new PyList([...self.map.values()].map(([, v]) => v)),
  items: (self) => new PyList([...self.map.values()].map(([k, v]) => new PyTuple([k, v]))),
  update: (self, args, kw, budget) => {
    dictUpdate(self, args, kw, budget);
    return null;
  },
  copy: (self) => {
    const d = new PyDict();
    for (const [k, v] of self.map.values()) d.set(k, v);
    return d;
  },
  setdefault: (self, args) => {
    const k = args[0] ?? null;
    const old = self.get(k);
    if (old !== undefined) return old;
    self.set(k, args[1] ?? null);
    return args[1] ?? null;
  },
  pop: (self, args) => {
    const k = args[0] ?? null;
    const old = self.get(k);
    if (old === undefined) {
      if (args.length > 1) return args[1]!;
      throw new PyException("KeyError", repr(k));
    }
    self.map.delete([...self.map.entries()].find(([, [kk]]) => eq(kk, k))![0]);
    return old;
  },
};

const SET: Record<string, (self: PySet, args: PyValue[], kw: Kwargs, budget: Budget) => PyValue> = {
  add: (self, args) => {
    self.add(args[0] ?? null);
    return null;
  },
  update: (self, args, _kw, budget) => {
    for (const a of args) for (const x of iterate(a, budget)) self.add(x);
    return null;
  },
};

/** `obj.name`: a module attribute or a bound method of str/list/dict/set. */
export function getAttr(obj: PyValue, name: string, budget: Budget): PyValue {
  if (obj instanceof PyModule) {
    const v = obj.attrs.get(name);
    if (v !== undefined && !obj.opaque) return v;
    const what = obj.opaque ? `the module ${obj.name} is` : `${obj.name}.${name} is`;
    throw new RestrictedError("unsupported", what, budget.file, budget.line);
  }
  const table: Record<string, Method> | undefined =
    typeof obj === "string"
      ? (STR as Record<string, Method>)
      : obj instanceof PyList
        ? (LIST as Record<string, Method>)
        : obj instanceof PyDict
          ? (DICT as Record<string, Method>)
          : obj instanceof PySet
            ? (SET as Record<string, Method>)
            : undefined;
  const m = table && Object.hasOwn(table, name) ? table[name] : undefined;
  if (!m)
    throw new PyException(
      "AttributeError",
      `'${typeName(obj)}' object has no attribute '${name}' (or the restricted evaluator does not support it)`,
    );
  return fn(name, (args, kw) => m(obj as never, args, kw, budget));
}

export { str };
