/**
 * AMQP field-table decoding that no table can break: what amqp-lib.ts installs in place of amqplib's
 * `codec.decodeFields`. amqplib's decoder recurses once per nested table or array, so a message whose
 * header table nests a few thousand levels (35 KB, well under frame_max) throws RangeError while the frame
 * is parsed; that is a connection error, RabbitMQ redelivers the unacked message to the next connection,
 * and the source never gets past it. This decoder gives the same values for every table amqplib decodes
 * (test/amqp-fields.test.ts compares them), but decodes at most MAX_TABLE_DEPTH levels: a deeper table or
 * array is skipped by its length prefix (no recursion at all past the limit) and left as a marker, and a
 * table it cannot read (an unknown type tag, a length past the end) becomes an empty one. Either way the
 * top-level table says why under the UNDECODABLE symbol, which the consumer checks: the message is
 * rejected like any other undecodable one, and the connection stays up.
 */
import { setOwn } from "../util/own.js";

/** Tables and arrays nested in a table, at most (RabbitMQ's own x-death header uses 3). */
export const MAX_TABLE_DEPTH = 32;

/**
 * Key of the reason a decoded table is incomplete (global: two copies of herald in one process share
 * amqplib's one codec, so each must recognise the other's marks).
 */
export const UNDECODABLE: unique symbol = Symbol.for("herald.amqp.undecodableTable");

/** What stands for a table or array nested past MAX_TABLE_DEPTH. */
export const TOO_DEEP: Readonly<Record<symbol, string>> = Object.freeze({
  [UNDECODABLE]: `nested deeper than ${MAX_TABLE_DEPTH} levels: not decoded`,
});

type Table = Record<string, unknown>;

interface Walk {
  buf: Buffer;
  at: number;
  depth: number;
  /** The first reason the decoded table is incomplete, shared by every level of one decode. */
  problem: { reason: string | undefined };
}

/** Drop-in for amqplib's `codec.decodeFields(slice)`: a whole table, its bytes only. */
export function decodeFieldTable(slice: Buffer): Table {
  const problem = { reason: undefined as string | undefined };
  let table: Table;
  try {
    table = readTable({ buf: slice, at: 0, depth: 0, problem });
  } catch (err) {
    // amqplib would throw here, which closes the connection over one message: read nothing of it instead.
    table = {};
    problem.reason = `is not a valid AMQP field table (${(err as Error).message}): fix the publisher`;
  }
  if (problem.reason !== undefined) Object.defineProperty(table, UNDECODABLE, { value: problem.reason });
  return table;
}

/**
 * Why a decoded table is incomplete, as the end of a sentence beginning "AMQP header table " (nested too
 * deep, unreadable), or undefined when it is whole.
 */
export function undecodableTable(table: unknown): string | undefined {
  if (typeof table !== "object" || table === null) return undefined;
  const reason = (table as { [UNDECODABLE]?: unknown })[UNDECODABLE];
  return typeof reason === "string" ? reason : undefined;
}

function readTable(w: Walk): Table {
  const table: Table = {};
  while (w.at < w.buf.length) {
    const len = w.buf.readUInt8(w.at);
    const key = w.buf.toString("utf8", w.at + 1, w.at + 1 + len);
    w.at += 1 + len;
    const value = readValue(w);
    if (key === "__proto__") setOwn(table, key, value);
    else table[key] = value;
  }
  return table;
}

/** An array's values, read in place up to `until` as amqplib does (not from a slice of its own). */
function readArray(w: Walk, until: number): unknown[] {
  const values: unknown[] = [];
  while (w.at < until) values.push(readValue(w));
  return values;
}

/** Past MAX_TABLE_DEPTH a table or array is not decoded: the marker stands for it. */
function tooDeep(w: Walk): typeof TOO_DEEP {
  w.problem.reason ??= `nests tables or arrays deeper than ${MAX_TABLE_DEPTH} levels, which herald does not decode: publish flatter headers`;
  return TOO_DEEP;
}

function readNestedTable(w: Walk): Table | typeof TOO_DEEP {
  const len = w.buf.readUInt32BE(w.at);
  const start = w.at + 4;
  w.at = start + len;
  if (w.depth >= MAX_TABLE_DEPTH) return tooDeep(w);
  return readTable({
    buf: w.buf.subarray(start, start + len),
    at: 0,
    depth: w.depth + 1,
    problem: w.problem,
  });
}

function readNestedArray(w: Walk): unknown[] | typeof TOO_DEEP {
  const until = w.at + 4 + w.buf.readUInt32BE(w.at);
  if (w.depth >= MAX_TABLE_DEPTH) {
    w.at = until;
    return tooDeep(w);
  }
  const inner: Walk = { buf: w.buf, at: w.at + 4, depth: w.depth + 1, problem: w.problem };
  const values = readArray(inner, until);
  w.at = inner.at;
  return values;
}

/** One tagged value, as amqplib's decodeFieldValue gives it (codec.js). */
function readValue(w: Walk): unknown {
  const b = w.buf;
  const tag = String.fromCharCode(b[w.at] ?? 0);
  const at = ++w.at;
  switch (tag) {
    case "F":
      return readNestedTable(w);
    case "A":
      return readNestedArray(w);
    case "S":
    case "x": {
      const len = b.readUInt32BE(at);
      w.at = at + 4 + len;
      return tag === "S" ? b.toString("utf8", at + 4, at + 4 + len) : b.subarray(at + 4, at + 4 + len);
    }
    default:
      return readScalar(w, tag, at);
  }
}

function readScalar(w: Walk, tag: string, at: number): unknown {
  const b = w.buf;
  const fixed = (size: number, value: unknown): unknown => {
    w.at = at + size;
    return value;
  };
  switch (tag) {
    case "b":
      return fixed(1, b.readInt8(at));
    case "B":
      return fixed(1, b.readUInt8(at));
    case "s":
      return fixed(2, b.readInt16BE(at));
    case "u":
      return fixed(2, b.readUInt16BE(at));
    case "I":
      return fixed(4, b.readInt32BE(at));
    case "i":
      return fixed(4, b.readUInt32BE(at));
    case "l":
      return fixed(8, Number(b.readBigInt64BE(at)));
    case "f":
      return fixed(4, b.readFloatBE(at));
    case "d":
      return fixed(8, b.readDoubleBE(at));
    case "t":
      return fixed(1, b[at] !== 0);
    case "V":
      return fixed(0, null);
    case "D":
      return fixed(5, { "!": "decimal", value: { places: b[at], digits: b.readUInt32BE(at + 1) } });
    case "T":
      return fixed(8, { "!": "timestamp", value: Number(b.readBigUInt64BE(at)) });
    default:
      throw new TypeError(`Unexpected type tag "${tag}"`);
  }
}
