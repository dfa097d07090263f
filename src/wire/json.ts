/**
 * The two canonical JSON encodings herald needs:
 * - `canonicalJson`: herald's own (RFC 8785 JCS): keys sorted by UTF-16 code units, no whitespace,
 *   ECMAScript number and string forms. Any language with a JCS library reproduces it.
 * - `pythonJson`: exactly what fedmsg emits (`simplejson` with `sort_keys=True, separators=(',', ':')`,
 *   `ensure_ascii=True`): keys sorted by code point, non-ASCII escaped as `\uXXXX`, Python float repr.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function canonicalJson(value: unknown): string {
  return encode(value, jcsKeys, jsNumber, JSON.stringify);
}

export function pythonJson(value: unknown): string {
  return encode(value, codePointKeys, pythonNumber, pythonString);
}

type KeySorter = (keys: string[]) => string[];

function encode(
  value: unknown,
  sortKeys: KeySorter,
  num: (n: number) => string,
  str: (s: string) => string,
): string {
  const out: string[] = [];
  const walk = (v: unknown, depth: number): void => {
    if (depth > 256) throw new TypeError("JSON nesting deeper than 256 levels");
    if (v === null) out.push("null");
    else if (typeof v === "boolean") out.push(v ? "true" : "false");
    else if (typeof v === "number") out.push(num(v));
    else if (typeof v === "string") out.push(str(v));
    else if (Array.isArray(v)) {
      out.push("[");
      v.forEach((item, i) => {
        if (i > 0) out.push(",");
        walk(item, depth + 1);
      });
      out.push("]");
    } else if (typeof v === "object") {
      const obj = v as Record<string, unknown>;
      const keys = sortKeys(Object.keys(obj).filter((k) => obj[k] !== undefined));
      out.push("{");
      keys.forEach((k, i) => {
        if (i > 0) out.push(",");
        out.push(str(k), ":");
        walk(obj[k], depth + 1);
      });
      out.push("}");
    } else {
      throw new TypeError(`cannot encode a ${typeof v} as JSON`);
    }
  };
  walk(value, 0);
  return out.join("");
}

function jcsKeys(keys: string[]): string[] {
  // Default sort compares UTF-16 code units, which is what JCS prescribes.
  return keys.sort();
}

function codePointKeys(keys: string[]): string[] {
  return keys.sort(compareCodePoints);
}

function compareCodePoints(a: string, b: string): number {
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

/** Python `json.dumps(s, ensure_ascii=True)`: escapes everything outside printable ASCII. */
export function pythonString(s: string): string {
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
