import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodeForSink } from "../src/transport/amqp-encode.js";
import { resolveAmqpOptions } from "../src/transport/amqp-options.js";
import { type AmqpPublish, encodeAmqp } from "../src/wire/fedora-messaging.js";
import { createMessage, type Message } from "../src/wire/message.js";

// The sink's fast path must publish exactly what the codec defines, byte for byte, or fail the same way.
const o = resolveAmqpOptions({ name: "t", url: "amqp://127.0.0.1", topicPrefix: "" });

function outcome(f: () => AmqpPublish): { ok: AmqpPublish } | { err: string } {
  try {
    return { ok: f() };
  } catch (err) {
    return { err: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

function expectSame(m: Message, options = o): void {
  for (const format of ["herald", "fedora-messaging"] as const) {
    const fast = outcome(() => encodeForSink(m, format, options));
    const ref = outcome(() => encodeAmqp(m, format, options));
    if ("ok" in ref && "ok" in fast) {
      expect(fast.ok.content.toString("utf8")).toBe(ref.ok.content.toString("utf8"));
      expect(fast.ok.routingKey).toBe(ref.ok.routingKey);
      expect(fast.ok.properties).toEqual(ref.ok.properties);
    } else expect(fast).toEqual(ref);
  }
}

const base = (over: Partial<Message> = {}): Message => ({
  ...createMessage({ topic: "org.example.thing", body: { a: 1 } }),
  ...over,
});

describe("encodeForSink", () => {
  it("equals the codec for arbitrary JSON bodies and headers (property)", () => {
    const header = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
    );
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 8 }),
        fc.dictionary(fc.string(), header, { maxKeys: 5 }),
        fc.option(fc.string(), { nil: undefined }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.option(fc.array(fc.string(), { maxLength: 3 }), { nil: undefined }),
        (body, headers, user, seq, via) => {
          const m = base({ body: body as Message["body"], headers });
          const origin = user === undefined ? m.origin : { ...m.origin, user };
          expectSame({ ...m, origin, seq, stream: seq === undefined ? undefined : "s/1", via });
        },
      ),
      { numRuns: 300 },
    );
  });

  it("equals the codec where JSON.stringify and canonical JSON differ", () => {
    const odd: unknown[] = [
      { b: 1, a: 2 }, // unsorted
      { "10": 1, "9": 2, a: 3 }, // integer keys: V8 orders them numerically
      { "1": { z: 1, y: 2 }, a: 1 },
      JSON.parse('{"__proto__": {"x": 1}, "a": 1}'),
      JSON.parse('{"b": 1, "__proto__": 2}'),
      { a: undefined, b: 1 },
      { d: new Date(0) },
      { n: Number.NaN },
      { n: Number.POSITIVE_INFINITY },
      { n: -0 },
      { arr: [1, undefined, 2] },
      // biome-ignore lint/suspicious/noSparseArray: a hole is one of the cases under test
      { arr: [1, , 2] },
      { f: () => 1 },
      { big: 10n },
      { buf: Buffer.from("x") },
      { nested: { deeper: [{ y: 1, x: [{ b: 2, a: 1 }] }] } },
      { s: "\u2028\ud800 é 😀" },
      Object.assign(Object.create(null), { b: 1, a: 2 }),
    ];
    for (const body of odd) expectSame(base({ body: body as Message["body"] }));
    expectSame(base({ headers: { z: 1, a: "x" } }));
    let deep: unknown = { leaf: 1 };
    for (let i = 0; i < 300; i++) deep = { d: deep };
    expectSame(base({ body: deep as Message["body"] }));
  });

  it("fails like the codec for a routing key that is too long", () => {
    expectSame(base({ topic: `a.${"b".repeat(300)}` }));
    expectSame(
      base(),
      resolveAmqpOptions({ name: "t", url: "amqp://127.0.0.1", topicPrefix: "p".repeat(250) }),
    );
  });

  it("falls back (same bytes) when the envelope has a field it does not know", () => {
    const m = base();
    const extra = { ...m, origin: { ...m.origin, extra: "x" } } as unknown as Message;
    expectSame(extra);
  });
});
