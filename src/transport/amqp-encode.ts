import {
  type AmqpFormat,
  type AmqpPublish,
  encodeAmqp,
  HERALD_CONTENT_TYPE,
  routingKeyFor,
} from "../wire/fedora-messaging.js";
import { encodeEnvelope, toWireObject } from "../wire/herald.js";
import type { Message } from "../wire/message.js";
import type { ResolvedAmqpOptions } from "./amqp-options.js";

/**
 * What the AMQP sink publishes for a message: exactly `encodeAmqp(msg, format, o)`, faster for the herald
 * format. The canonical envelope (RFC 8785) is JSON.stringify of the wire object whenever every object in
 * it already has its keys in JCS order, which is the common case (toWireObject inserts its own fields in
 * that order; bodies from JSON.parse or small literals usually are). Native JSON.stringify is several times faster than the generic
 * canonical encoder, and the sink encodes every message of a batch before publishing any of them, so this
 * is time the broker spends with nothing in flight. Anything unusual goes to the canonical encoder, which
 * also produces its errors.
 */
export function encodeForSink(msg: Message, format: AmqpFormat, o: ResolvedAmqpOptions): AmqpPublish {
  if (format !== "herald") return encodeAmqp(msg, format, o);
  const routingKey = routingKeyFor(msg.topic, o.topicPrefix);
  // toWireObject inserts its keys in JCS order; jcsReady checks every object (bodies included).
  const ready = jcsReady(toWireObject(msg), 0);
  return {
    routingKey,
    content: ready === FALLBACK ? encodeEnvelope(msg) : Buffer.from(JSON.stringify(ready), "utf8"),
    // Same properties as encodeHeraldAmqp (test/amqp-encode.test.ts compares the two).
    properties: { contentType: HERALD_CONTENT_TYPE, deliveryMode: 2, messageId: msg.id, headers: {} },
  };
}

const FALLBACK: unique symbol = Symbol("fallback");

const MAX_DEPTH = 256;
/** Keys V8 orders numerically ahead of the others: a copy in sorted order would not keep that order. */
const INDEX_KEY = /^(?:0|[1-9][0-9]*)$/;

/**
 * `v`, or a copy with objects' keys re-inserted in JCS order, such that JSON.stringify of the result is
 * canonicalJson(v); FALLBACK when that cannot be guaranteed (non-finite numbers, toJSON, class instances,
 * holes, functions, numeric keys out of order, a `__proto__` key to move, nesting deeper than canonicalJson
 * allows).
 */
function jcsReady(v: unknown, depth: number): unknown {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return Number.isFinite(v) ? v : FALLBACK;
    case "object":
      if (v === null) return v;
      if (depth >= MAX_DEPTH) return FALLBACK;
      return Array.isArray(v) ? arrayReady(v, depth) : objectReady(v as Record<string, unknown>, depth);
    default:
      return FALLBACK;
  }
}

function arrayReady(a: unknown[], depth: number): unknown {
  let out: unknown[] | undefined;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    if (x === undefined) return FALLBACK; // a hole or undefined: the encoders disagree
    const r = jcsReady(x, depth + 1);
    if (r === FALLBACK) return FALLBACK;
    if (r !== x) {
      out ??= a.slice();
      out[i] = r;
    }
  }
  return out ?? a;
}

function objectReady(obj: Record<string, unknown>, depth: number): unknown {
  const proto: unknown = Object.getPrototypeOf(obj);
  if (proto !== Object.prototype && proto !== null) return FALLBACK;
  const keys = Object.keys(obj);
  let sorted = true;
  let changed: Map<string, unknown> | undefined;
  let prev: string | undefined;
  for (const k of keys) {
    const x = obj[k];
    if (x === undefined) continue; // both encoders leave it out
    const r = jcsReady(x, depth + 1);
    if (r === FALLBACK) return FALLBACK;
    if (r !== x) {
      changed ??= new Map();
      changed.set(k, r);
    }
    if (prev !== undefined && prev >= k) sorted = false;
    prev = k;
  }
  if (sorted && changed === undefined) return obj;
  // A plain literal, not Object.create(null): JSON.stringify is much slower on dictionary-mode objects.
  const out: Record<string, unknown> = {};
  for (const k of keys.sort()) {
    const x = obj[k];
    if (x === undefined) continue;
    // "__proto__" would set the copy's prototype instead of adding a key.
    if ((!sorted && INDEX_KEY.test(k)) || k === "__proto__") return FALLBACK;
    out[k] = changed?.has(k) ? changed.get(k) : x;
  }
  return out;
}
