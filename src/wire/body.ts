/**
 * What a message body may hold: JSON's values only, as JSON.stringify would write them unchanged, nested at
 * most MAX_BODY_DEPTH deep, with finite numbers. Checked once per message (validateMessage) and by encoders
 * handed a message that did not come from createMessage (assertJsonBody).
 */
import { type HeraldError, rejected } from "../errors.js";

/**
 * How deep a body may nest, the body object itself being level 1. Real payloads nest a few levels; the
 * bound keeps every envelope (body plus 1 level, a submit request plus 3) within herald's encoders (256
 * levels, wire/json.ts) and the decoders subscribers use (Ruby's json: 100, serde_json: 128, Python's json:
 * its recursion limit, 1000), and stops a 200,000-level body from overflowing the stack of JSON.stringify.
 */
export const MAX_BODY_DEPTH = 64;

/**
 * What a body holds that JSON cannot carry as it is, and where (`path`, from the body down: `.when`,
 * `[2]`, `["a b"]`). `plain` says whether the problem is one JSON.stringify would hide by changing the value
 * (a Date becomes a string, a Map `{}`, an undefined or function field vanishes) rather than one the body
 * rules refuse (nesting, non-finite numbers), which keep their historical text.
 */
export interface BodyFault {
  path: string;
  problem: string;
  hidden: boolean;
}

/**
 * The message's refusal for a body fault: a hidden change names the message and the JSON path, since the
 * value is in the publisher's hands; the body rules keep the text they always had.
 */
export function bodyRejected(f: BodyFault, id: string): HeraldError {
  const at = `body${f.path}`;
  if (!f.hidden) return rejected("INVALID", `${at} ${f.problem}`, { id });
  return rejected("INVALID", `message ${id}: ${at} ${f.problem}`, { id, path: at });
}

/**
 * Throws the MessageRejectedError (INVALID) validateMessage would for a body JSON cannot carry unchanged
 * (a Date, Map, Set, class instance, BigInt, function, symbol or undefined anywhere in it, a non-finite
 * number, nesting deeper than MAX_BODY_DEPTH). For encoders handed a message that did not come from
 * createMessage.
 */
export function assertJsonBody(body: unknown, id: string): void {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw rejected("INVALID", "body must be a JSON object", { id });
  const fault = bodyFault(body, 1);
  if (fault !== undefined) throw bodyRejected(fault, id);
}

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/**
 * The first thing in a body (an object or array, `level`: the body is 1) that no encoder writes as it is.
 * Named here rather than failing in the outbox's encoder, overflowing the stack of JSON.stringify, or being
 * changed silently by JSON.stringify on the way to the broker. One walk and no allocation unless something
 * is wrong: it runs for every message.
 */
export function bodyFault(v: object, level: number): BodyFault | undefined {
  if (level > MAX_BODY_DEPTH)
    return {
      path: "",
      problem: `nests deeper than ${MAX_BODY_DEPTH} levels (the limit for bodies): flatten it`,
      hidden: false,
    };
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const f = valueFault(v[i], level);
      if (f !== undefined) {
        if (f.hidden) f.path = `[${i}]${f.path}`;
        return f;
      }
    }
    return undefined;
  }
  const proto: unknown = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return { path: "", problem: notPlain(v), hidden: true };
  for (const k in v) {
    // for-in also visits keys inherited from a tampered Object.prototype: JSON takes own keys only.
    if (!Object.hasOwn(v, k)) continue;
    const f = valueFault((v as Record<string, unknown>)[k], level);
    if (f !== undefined) {
      if (f.hidden) f.path = `${PLAIN_KEY.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`}${f.path}`;
      return f;
    }
  }
  return undefined;
}

function valueFault(x: unknown, level: number): BodyFault | undefined {
  switch (typeof x) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(x)
        ? undefined
        : {
            path: "",
            problem: `holds the number ${x}, which JSON cannot carry: send it as a string`,
            hidden: false,
          };
    case "object":
      return x === null ? undefined : bodyFault(x, level + 1);
    case "bigint":
      return {
        path: "",
        problem: `is the BigInt ${x}n, which JSON cannot carry: convert it to a string/number/plain object first (String(n), or Number(n) when it is a safe integer)`,
        hidden: true,
      };
    case "undefined":
      return {
        path: "",
        problem:
          "is undefined, which JSON leaves out (or writes as null in a list): convert it to a string/number/plain object first, use null, or leave the key out",
        hidden: true,
      };
    default:
      return {
        path: "",
        problem: `is a ${typeof x}, which JSON cannot carry (it would vanish): convert it to a string/number/plain object first, or leave it out`,
        hidden: true,
      };
  }
}

/** Why an object that is not plain cannot travel, with the usual conversion for its kind. */
function notPlain(v: object): string {
  const name = (v.constructor as { name?: unknown } | undefined)?.name;
  const kind = typeof name === "string" && name !== "" ? name : "object that is not plain";
  const how =
    v instanceof Date
      ? " (date.toISOString())"
      : v instanceof Map
        ? " (Object.fromEntries(map))"
        : v instanceof Set
          ? " ([...set])"
          : Buffer.isBuffer(v) || ArrayBuffer.isView(v)
            ? " (bytes.toString('base64'))"
            : "";
  return `is a ${kind}, which JSON cannot carry as it is: convert it to a string/number/plain object first${how}`;
}
