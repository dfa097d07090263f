import { afterEach, describe, expect, it } from "vitest";
import { type HeraldError, MessageRejectedError } from "../src/errors.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { encodeSubmitted } from "../src/wire/submit.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

class Point {
  x = 1;
}

/** Bodies JSON.stringify would change silently (or throw a bare TypeError on), and the path each names. */
const BAD: Array<[string, unknown, string, RegExp]> = [
  ["Date", { when: new Date("2026-01-01T00:00:00Z") }, "body.when", /is a Date.*toISOString/],
  ["Map", { m: new Map([["a", 1]]) }, "body.m", /is a Map.*Object\.fromEntries/],
  ["Set", { a: [1, { s: new Set([1]) }] }, "body.a[1].s", /is a Set/],
  ["function", { cb: () => 1 }, "body.cb", /is a function/],
  ["undefined", { u: undefined, k: 1 }, "body.u", /is undefined/],
  ["undefined in a list", { l: [1, undefined] }, "body.l[1]", /is undefined/],
  ["BigInt", { deep: { "odd key": 10n } }, 'body.deep["odd key"]', /is the BigInt 10n/],
  ["class instance body", new Point(), "body", /is a Point/],
];

function refusal(fn: () => unknown): HeraldError {
  try {
    fn();
  } catch (err) {
    return err as HeraldError;
  }
  throw new Error("not refused");
}

describe("createMessage refuses bodies JSON would change", () => {
  for (const [kind, body, path, what] of BAD)
    it(`refuses ${kind} naming the message id, ${path} and the fix`, () => {
      const err = refusal(() =>
        createMessage({ id: "m-1", topic: "org.example.t", body: body as Message["body"] }),
      );
      expect(err).toBeInstanceOf(MessageRejectedError);
      expect(err.code).toBe("INVALID");
      expect(err.message.startsWith(`message m-1: ${path} `)).toBe(true);
      expect(err.message).toMatch(what);
      expect(err.message).toMatch(/convert it to a string\/number\/plain object first/);
      expect(err.details).toMatchObject({ id: "m-1", path });
    });

  it("still takes plain JSON, null-prototype objects included, and keeps NaN's refusal", () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1 });
    expect(() =>
      createMessage({
        topic: "t.ok",
        body: { s: "x", n: 1.5, b: true, z: null, l: [1, [2]], o: { bare } } as never,
      }),
    ).not.toThrow();
    expect(refusal(() => createMessage({ topic: "t.x", body: { n: Number.NaN } })).message).toBe(
      "body holds the number NaN, which JSON cannot carry: send it as a string",
    );
  });
});

describe("encodeSubmitted refuses a hand-built message's body JSON would change", () => {
  it("throws the same typed error instead of sending a Date as a string", () => {
    const m = { ...createMessage({ id: "m-2", topic: "t.x", body: {} }), body: { d: new Date() } as never };
    const err = refusal(() => encodeSubmitted(m));
    expect(err).toBeInstanceOf(MessageRejectedError);
    expect(err.message).toMatch(/^message m-2: body\.d is a Date/);
  });
});

describe("client.publish, publishMany and publishBatch refuse them before sending", () => {
  it("refuses each in its own slot, with nothing stored, and the good ones go", async () => {
    tb = await startTestBroker();
    const c = tb.client();
    for (const [kind, body, path] of BAD) {
      const err = await c.publish("org.example.bodies", body as never).catch((e: unknown) => e);
      expect(err, kind).toBeInstanceOf(MessageRejectedError);
      expect((err as HeraldError).code, kind).toBe("INVALID");
      expect((err as HeraldError).message, kind).toContain(`: ${path} `);
    }
    const many = await c.publishMany([
      { topic: "org.example.ok", body: { i: 1 } },
      { topic: "org.example.bad", body: { when: new Date() } as never },
    ]);
    expect(many[0]).not.toBeInstanceOf(Error);
    expect(many[1]).toBeInstanceOf(MessageRejectedError);
    const batch = await c
      .publishBatch([
        { topic: "org.example.ok", body: { i: 2 } },
        { topic: "org.example.bad", id: "big-1", body: { n: 1n } as never },
      ])
      .catch((e: unknown) => e);
    expect(batch).toBeInstanceOf(MessageRejectedError);
    expect((batch as Error).message).toMatch(/^message big-1: body\.n is the BigInt 1n/);
    expect(tb.broker.status().outbox.headSeq).toBe(2);
  });
});
