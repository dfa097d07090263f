/**
 * herald's AMQP field-table decoder (src/transport/amqp-fields.ts) and its installation into amqplib
 * (src/transport/amqp-lib.ts). The decoder must give exactly amqplib's values for every table amqplib
 * decodes, decode any depth a frame allows without recursing past MAX_TABLE_DEPTH, and be the one
 * amqplib's frame parser uses: these tests fail if an amqplib upgrade moves codec.decodeFields, stops
 * defs.js from taking it from codec's exports, or if a herald module loads amqplib around amqp-lib.ts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { runInThisContext } from "node:vm";
import { Worker } from "node:worker_threads";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeFieldTable,
  MAX_TABLE_DEPTH,
  TOO_DEEP,
  UNDECODABLE,
  undecodableTable,
} from "../src/transport/amqp-fields.js";
import { amqplibGuard, nestedHeaderFrame } from "../src/transport/amqp-lib.js";

const load = createRequire(import.meta.url);
const LIB = join(dirname(load.resolve("amqplib")), "lib");
const ROOT = join(import.meta.dirname, "..");

interface Codec {
  encodeTable(buf: Buffer, table: unknown, offset: number): number;
  decodeFields(slice: Buffer): Record<string, unknown>;
}

/** amqplib's codec.js as shipped, in a module instance of its own (the cached one is patched). */
function pristineCodec(): Codec {
  const file = join(LIB, "codec.js");
  const wrapped = runInThisContext(`(function (module, exports) {${readFileSync(file, "utf8")}\n})`, {
    filename: file,
  }) as (m: { exports: Codec }, e: Codec) => void;
  const m = { exports: {} as Codec };
  wrapped(m, m.exports);
  return m.exports;
}

const amqplibCodec = pristineCodec();

function encode(table: unknown): Buffer {
  const buf = Buffer.alloc(65_536);
  const len = amqplibCodec.encodeTable(buf, table, 0);
  return buf.subarray(4, len); // decodeFields takes the table's bytes, without its length
}

/** A table whose header "deep" nests `depth` tables {"a": ...} or arrays, built byte by byte (amqplib's encoder recurses too). */
function nestedTableBytes(depth: number, kind: "F" | "A" = "F"): Buffer {
  const per = kind === "F" ? 7 : 5; // tag, length, and a table's key "a"
  const buf = Buffer.alloc(5 + depth * per + 1);
  buf.write("\x04deep", 0, "latin1");
  let at = 5;
  for (let i = 0; i < depth; i++) {
    buf.write(kind, at, "latin1");
    buf.writeUInt32BE((depth - i) * per + 1 - 5, at + 1); // the rest, innermost value included
    if (kind === "F") buf.write("\x01a", at + 5, "latin1");
    at += per;
  }
  buf.write("V", at, "latin1"); // void, the innermost value
  return buf;
}

function depthOf(v: unknown): number {
  let d = 0;
  for (let cur = v; typeof cur === "object" && cur !== null && cur !== TOO_DEEP; d++)
    cur = Array.isArray(cur) ? cur[0] : (cur as Record<string, unknown>)["a"];
  return d;
}

// "!" is amqplib's type trapdoor ({"!": "uint8", value: 1}); __proto__ is tested on its own below.
const key = fc.string({ maxLength: 12 }).filter((k) => k !== "__proto__" && k !== "!");
const typed = (type: string, value: fc.Arbitrary<unknown>) => value.map((v) => ({ "!": type, value: v }));
const scalar = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.boolean(),
  fc.constant(null),
  fc.integer(),
  fc.double({ noNaN: true, min: -1e15, max: 1e15 }), // amqplib writes integral ones as int64
  fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)),
  typed("int8", fc.integer({ min: -128, max: 127 })),
  typed("uint8", fc.integer({ min: 0, max: 255 })),
  typed("int16", fc.integer({ min: -32768, max: 32767 })),
  typed("uint16", fc.integer({ min: 0, max: 65535 })),
  typed("uint32", fc.integer({ min: 0, max: 2 ** 32 - 1 })),
  typed("int64", fc.maxSafeInteger()),
  typed("float", fc.float({ noNaN: true })),
  typed("timestamp", fc.integer({ min: 0, max: 2 ** 40 })),
  typed(
    "decimal",
    fc.record({ places: fc.integer({ min: 0, max: 255 }), digits: fc.integer({ min: 0, max: 2 ** 32 - 1 }) }),
  ),
);
const { table } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: "small" }, scalar, tie("table"), fc.array(tie("value"), { maxLength: 4 })),
  table: fc.dictionary(key, tie("value"), { maxKeys: 5 }),
}));

describe("herald's AMQP field-table decoder", () => {
  it("gives amqplib's values for every table amqplib encodes", () => {
    fc.assert(
      fc.property(table, (t) => {
        const bytes = encode(t);
        const ours = decodeFieldTable(bytes);
        expect(ours).toEqual(amqplibCodec.decodeFields(bytes));
        expect(undecodableTable(ours)).toBeUndefined();
      }),
      { numRuns: 500 },
    );
  });

  it("gives amqplib's values for arbitrary bytes amqplib reads, and marks, not throws, what it throws on", () => {
    const bytes = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
    fc.assert(
      fc.property(bytes, (b) => {
        let expected: unknown;
        try {
          expected = amqplibCodec.decodeFields(b);
        } catch (err) {
          const ours = decodeFieldTable(b);
          expect(ours).toEqual({});
          expect(undecodableTable(ours)).toContain((err as Error).message);
          return;
        }
        if (Object.hasOwn(expected as object, "__proto__")) return; // ours keeps it as an own key
        expect(decodeFieldTable(b)).toEqual(expected);
      }),
      { numRuns: 3000 },
    );
  });

  it("decodes tables and arrays nested up to MAX_TABLE_DEPTH whole", () => {
    for (const kind of ["F", "A"] as const) {
      const t = decodeFieldTable(nestedTableBytes(MAX_TABLE_DEPTH, kind));
      expect(undecodableTable(t)).toBeUndefined();
      expect(depthOf(t["deep"])).toBe(MAX_TABLE_DEPTH);
    }
  });

  it("decodes any nesting a frame allows, leaving a marker past the limit and saying why", () => {
    // 131,072 bytes (RabbitMQ's frame_max) hold about 18,700 levels of {"a": ...}, 26,000 of arrays.
    for (const [depth, kind] of [
      [MAX_TABLE_DEPTH + 1, "F"],
      [5_000, "F"],
      [18_700, "F"],
      [26_000, "A"],
    ] as const) {
      const t = decodeFieldTable(nestedTableBytes(depth, kind));
      expect(depthOf(t["deep"]), `${depth} ${kind}`).toBe(MAX_TABLE_DEPTH);
      expect(undecodableTable(t)).toMatch(/nests tables or arrays deeper than 32 levels/);
      expect(Object.keys(t)).toEqual(["deep"]); // the reason is no header
    }
    // amqplib's own decoder overflows the stack on these.
    expect(() => amqplibCodec.decodeFields(nestedTableBytes(18_700))).toThrow(RangeError);
  });

  it("keeps the headers after a cut one, and a __proto__ header as an own key", () => {
    const bytes = Buffer.concat([
      nestedTableBytes(100),
      encode(JSON.parse('{"after": "yes", "__proto__": {"x": 1}}')),
    ]);
    const t = decodeFieldTable(bytes);
    expect(t["after"]).toBe("yes");
    expect(Object.hasOwn(t, "__proto__")).toBe(true);
    expect(Object.getPrototypeOf(t)).toBe(Object.prototype);
    expect(t[UNDECODABLE as unknown as string]).toBeDefined();
  });
});

describe("amqp-lib.ts: herald's decoder in amqplib", () => {
  it("is the one amqplib's frame parser uses (what a connection calls for every content header)", () => {
    expect(amqplibGuard).toEqual({ active: true });
    const frame = load(join(LIB, "frame.js")) as {
      decodeFrame(f: { type: number; channel: number; payload: Buffer }): { fields: { headers: unknown } };
    };
    const decoded = frame.decodeFrame({ type: 2, channel: 1, payload: nestedHeaderFrame(18_000) });
    expect(undecodableTable(decoded.fields.headers)).toMatch(/deeper than 32 levels/);
  });

  it("is the only herald module that loads amqplib (others import its types only)", () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith(".ts") && !p.endsWith("amqp-lib.ts")) {
          const text = readFileSync(p, "utf8");
          const loads =
            /^\s*import\s+(?!type\b)[^;]*from\s+["']amqplib["']/m.test(text) ||
            /^\s*import\s+["']amqplib["']/m.test(text) ||
            /(?:require|import)\(\s*["']amqplib/.test(text);
          if (loads) offenders.push(p.slice(ROOT.length + 1));
        }
      }
    };
    walk(join(ROOT, "src"));
    expect(offenders).toEqual([]);
  });

  it("is in place in the sink's worker thread too (the built modules, as that worker loads them)", async () => {
    // A thread has its own module cache: amqp-thread-worker.js gets the decoder from its own amqp.js.
    const code = `
      import { parentPort } from "node:worker_threads";
      import { createRequire } from "node:module";
      await import(${JSON.stringify(new URL("../dist/transport/amqp.js", import.meta.url).href)});
      const { nestedHeaderFrame } = await import(${JSON.stringify(new URL("../dist/transport/amqp-lib.js", import.meta.url).href)});
      const frame = createRequire(${JSON.stringify(join(LIB, "frame.js"))})(${JSON.stringify(join(LIB, "frame.js"))});
      const headers = frame.decodeFrame({ type: 2, channel: 1, payload: nestedHeaderFrame(5000) }).fields.headers;
      parentPort.postMessage(headers[Symbol.for("herald.amqp.undecodableTable")] ?? "decoded whole");`;
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`));
    const reply = await new Promise<unknown>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    await worker.terminate();
    expect(reply).toMatch(/deeper than 32 levels/);
  });
});
