import { PyException } from "./errors.js";
import {
  type Budget,
  floatRepr,
  num,
  PyDict,
  PyList,
  PyTuple,
  type PyValue,
  repr,
  str,
  typeError,
  typeName,
  valueError,
} from "./values.js";

interface Spec {
  flags: string;
  width: number;
  precision: number | undefined;
  conv: string;
}

function pad(body: string, sign: string, spec: { width: number; left: boolean; zero: boolean }): string {
  const len = sign.length + body.length;
  if (len >= spec.width) return sign + body;
  if (spec.left) return (sign + body).padEnd(spec.width);
  if (spec.zero) return sign + body.padStart(spec.width - sign.length, "0");
  return (sign + body).padStart(spec.width);
}

function asInt(v: PyValue, conv: string): bigint {
  const n = num(v);
  if (n === undefined) throw typeError(`%${conv} format: a real number is required, not ${typeName(v)}`);
  if (typeof n === "bigint") return n;
  if (!Number.isFinite(n))
    throw new PyException("OverflowError", "cannot convert float infinity or nan to integer");
  return BigInt(Math.trunc(n));
}

function asFloat(v: PyValue, conv: string): number {
  const n = num(v);
  if (n === undefined) throw typeError(`must be real number, not ${typeName(v)} (for %${conv})`);
  return Number(n);
}

/** %e / {:e}: mantissa with `p` decimals and a two-digit-minimum exponent, as Python prints it. */
function expo(x: number, p: number): string {
  const [m, e] = x.toExponential(Math.min(p, 100)).split("e") as [string, string];
  const n = Number(e);
  return `${m}e${n < 0 ? "-" : "+"}${String(Math.abs(n)).padStart(2, "0")}`;
}

/** %g / {:g}: Python's general format. */
function general(x: number, p: number, alt: boolean): string {
  const P = p === 0 ? 1 : p;
  if (x === 0) return alt ? `0.${"0".repeat(P - 1)}` : "0";
  const X = Number(x.toExponential(P - 1).split("e")[1]);
  const s = X >= -4 && X < P ? x.toFixed(Math.min(Math.max(P - 1 - X, 0), 100)) : expo(x, P - 1);
  if (alt) return s;
  const [mant, exp] = s.split("e") as [string, string | undefined];
  const trimmed = mant.includes(".") ? mant.replace(/0+$/, "").replace(/\.$/, "") : mant;
  return exp === undefined ? trimmed : `${trimmed}e${exp}`;
}

function special(x: number): string | undefined {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return "inf";
  return undefined;
}

/** Format one number/string for a conversion character shared by % and .format. */
function convert(
  v: PyValue,
  conv: string,
  precision: number | undefined,
  alt: boolean,
): { sign: string; body: string } {
  switch (conv) {
    case "s":
      return { sign: "", body: precision === undefined ? str(v) : [...str(v)].slice(0, precision).join("") };
    case "r":
    case "a":
      return {
        sign: "",
        body: precision === undefined ? repr(v) : [...repr(v)].slice(0, precision).join(""),
      };
    case "c": {
      if (typeof v === "string" && [...v].length === 1) return { sign: "", body: v };
      const n = asInt(v, conv);
      if (n < 0n || n > 0x10ffffn) throw new PyException("OverflowError", "%c arg not in range(0x110000)");
      return { sign: "", body: String.fromCodePoint(Number(n)) };
    }
    case "d":
    case "i":
    case "u":
    case "x":
    case "X":
    case "o":
    case "b": {
      const n = asInt(v, conv);
      const radix = conv === "x" || conv === "X" ? 16 : conv === "o" ? 8 : conv === "b" ? 2 : 10;
      let body = (n < 0n ? -n : n).toString(radix);
      if (precision !== undefined) body = body.padStart(precision, "0");
      if (conv === "X") body = body.toUpperCase();
      if (alt && radix !== 10) body = `0${conv === "X" ? "X" : conv}${body}`;
      return { sign: n < 0n ? "-" : "", body };
    }
    default: {
      const x = asFloat(v, conv);
      const p = precision ?? 6;
      const sp = special(x);
      const sign = x < 0 || Object.is(x, -0) ? "-" : "";
      const a = Math.abs(x);
      let body: string;
      if (sp) body = sp;
      else if (conv === "f" || conv === "F") body = a.toFixed(Math.min(p, 100));
      else if (conv === "e" || conv === "E") body = expo(a, p);
      else if (conv === "g" || conv === "G") body = general(a, p, alt);
      else if (conv === "%") body = `${(a * 100).toFixed(Math.min(p, 100))}%`;
      else throw valueError(`unsupported format character '${conv}'`);
      if (conv === conv.toUpperCase() && conv !== "%") body = body.toUpperCase();
      return { sign, body };
    }
  }
}

const PERCENT = /%(?:\(([^)]*)\))?([-+ #0]*)(\d+|\*)?(?:\.(\d+|\*))?([hlL]?)(.)?/gs;

/** `fmt % args`, printf-style, as Python's str.__mod__ does it (the subset without `*` widths). */
export function percentFormat(fmt: string, args: PyValue, budget: Budget): string {
  const positional = args instanceof PyTuple ? args.items : [args];
  const mapping = args instanceof PyDict ? args : undefined;
  let next = 0;
  const out = fmt.replace(
    PERCENT,
    (
      _m,
      key: string | undefined,
      flags: string,
      w: string | undefined,
      p: string | undefined,
      _l,
      conv: string | undefined,
    ) => {
      if (conv === undefined) throw valueError("incomplete format");
      if (conv === "%" && key === undefined && !flags && !w && p === undefined) return "%";
      if (w === "*" || p === "*") throw typeError("* wants int (not supported by the restricted evaluator)");
      let value: PyValue;
      if (key !== undefined) {
        if (!mapping) throw typeError("format requires a mapping");
        const v = mapping.get(key);
        if (v === undefined) throw new PyException("KeyError", repr(key));
        value = v;
      } else {
        if (next >= positional.length) throw typeError("not enough arguments for format string");
        value = positional[next++]!;
      }
      if (!"srcdiuxXoeEfFgG%a".includes(conv)) {
        throw valueError(`unsupported format character '${conv}' (0x${conv.charCodeAt(0).toString(16)})`);
      }
      const spec: Spec = {
        flags,
        width: w ? Number(w) : 0,
        precision: p === undefined ? undefined : Number(p),
        conv,
      };
      budget.size(spec.width);
      const { sign, body } = convert(value, conv === "%" ? "s" : conv, spec.precision, flags.includes("#"));
      const numeric = !"srca".includes(conv);
      const shownSign =
        sign || (numeric && flags.includes("+") ? "+" : numeric && flags.includes(" ") ? " " : "");
      return pad(body, shownSign, {
        width: spec.width,
        left: flags.includes("-"),
        zero: numeric && flags.includes("0"),
      });
    },
  );
  if (!mapping && next < positional.length)
    throw typeError("not all arguments converted during string formatting");
  budget.size(out.length);
  return out;
}

const SPEC = /^(?:(.)?([<>=^]))?([-+ ])?(#)?(0)?(\d+)?([,_])?(?:\.(\d+))?([bcdeEfFgGnosxX%])?$/su;

/** Apply a format-spec mini-language string (the part after `:` in `{0:>8}`). */
export function formatSpec(v: PyValue, spec: string, budget: Budget): string {
  if (spec === "") return str(v);
  const m = SPEC.exec(spec);
  if (!m) throw valueError(`Invalid format specifier '${spec}' for object of type '${typeName(v)}'`);
  const [, fill = " ", align, signFlag, alt, zero, width, group, precision, type] = m;
  const isNumber = num(v) !== undefined;
  const conv = type ?? (typeof v === "string" ? "s" : typeof v === "number" ? "g" : isNumber ? "d" : "s");
  if (conv !== "s" && !isNumber)
    throw valueError(`Unknown format code '${conv}' for object of type '${typeName(v)}'`);
  if (conv === "s" && isNumber && type === "s")
    throw valueError(`Unknown format code 's' for object of type '${typeName(v)}'`);
  const w = width ? Number(width) : 0;
  budget.size(w);
  const prec = precision === undefined ? undefined : Number(precision);
  let { sign, body } =
    conv === "g" && type === undefined && typeof v === "number" && prec === undefined
      ? { sign: v < 0 ? "-" : "", body: floatRepr(Math.abs(v)) }
      : convert(v, conv === "n" ? "d" : conv, prec, alt !== undefined);
  if (group && /^\d+/.test(body)) {
    body = body.replace(/^\d+/, (d) => d.replace(/\B(?=(\d{3})+(?!\d))/g, group));
  }
  if (isNumber && !sign && signFlag && signFlag !== "-") sign = signFlag;
  const al = align ?? (zero && isNumber ? "=" : isNumber ? ">" : "<");
  const f = align ? fill : zero && isNumber ? "0" : " ";
  const len = [...sign].length + [...body].length;
  if (len >= w) return sign + body;
  const gap = w - len;
  if (al === "<") return sign + body + f.repeat(gap);
  if (al === ">") return f.repeat(gap) + sign + body;
  if (al === "=") return sign + f.repeat(gap) + body;
  return f.repeat(Math.floor(gap / 2)) + sign + body + f.repeat(gap - Math.floor(gap / 2));
}

/** str.format(*args, **kwargs) with auto/explicit numbering, `[key]`/`.attr`-free fields and specs. */
export function braceFormat(
  fmt: string,
  args: PyValue[],
  kwargs: Map<string, PyValue>,
  budget: Budget,
): string {
  let out = "";
  let auto = 0;
  let i = 0;
  while (i < fmt.length) {
    const c = fmt[i]!;
    if (c === "}") {
      if (fmt[i + 1] !== "}") throw valueError("Single '}' encountered in format string");
      out += "}";
      i += 2;
      continue;
    }
    if (c !== "{") {
      out += c;
      i++;
      continue;
    }
    if (fmt[i + 1] === "{") {
      out += "{";
      i += 2;
      continue;
    }
    const end = fmt.indexOf("}", i);
    if (end < 0) throw valueError("expected '}' before end of string");
    const field = fmt.slice(i + 1, end);
    if (field.includes("{"))
      throw valueError("nested format fields are not supported by the restricted evaluator");
    const m = /^([^![:]*)((?:\[[^\]]*\])*)(?:!([rsa]))?(?::(.*))?$/s.exec(field);
    if (!m) throw valueError(`bad format field {${field}}`);
    const [, name = "", index = "", conversion, spec = ""] = m;
    let value: PyValue;
    if (name === "") {
      if (auto < 0)
        throw valueError("cannot switch from manual field specification to automatic field numbering");
      value = positional(args, auto++);
    } else if (/^\d+$/.test(name)) {
      value = positional(args, Number(name));
    } else {
      if (name.includes("."))
        throw valueError("attribute lookups in format fields are not supported by the restricted evaluator");
      const v = kwargs.get(name);
      if (v === undefined) throw new PyException("KeyError", repr(name));
      value = v;
    }
    for (const [, key] of index.matchAll(/\[([^\]]*)\]/g)) value = item(value, key!);
    if (conversion === "r" || conversion === "a") value = repr(value);
    else if (conversion === "s") value = str(value);
    out += formatSpec(value, spec, budget);
    budget.size(out.length);
    i = end + 1;
  }
  return out;
}

function positional(args: PyValue[], n: number): PyValue {
  const v = args[n];
  if (v === undefined)
    throw new PyException("IndexError", `Replacement index ${n} out of range for positional args tuple`);
  return v;
}

function item(v: PyValue, key: string): PyValue {
  if (v instanceof PyDict) {
    const r = v.get(key);
    if (r === undefined) throw new PyException("KeyError", repr(key));
    return r;
  }
  if (/^\d+$/.test(key) && (v instanceof PyTuple || v instanceof PyList)) {
    const r = v.items[Number(key)];
    if (r === undefined) throw new PyException("IndexError", "list index out of range");
    return r;
  }
  throw typeError(`'${typeName(v)}' object is not subscriptable`);
}
