import { afterEach, describe, expect, it } from "vitest";
import { type HeraldError, MessageRejectedError } from "../src/errors.js";
import { startTestBroker as startAppTestBroker } from "../src/testing/broker.js";
import type { JsonObject, JsonShaped, NotArray } from "../src/wire/json.js";
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

  it("refuses an undefined field instead of leaving it out (createMessage refuses it too)", () => {
    const m = {
      ...createMessage({ id: "m-3", topic: "t.x", body: {} }),
      body: { k: 1, u: undefined } as never,
    };
    const err = refusal(() => encodeSubmitted(m));
    expect(err).toBeInstanceOf(MessageRejectedError);
    expect(err.message).toMatch(/^message m-3: body\.u is undefined/);
  });
});

describe("client.submit of hand-built messages", () => {
  it("refuses one whose body JSON would change in its own slot; the others are stored", async () => {
    tb = await startTestBroker();
    const good = createMessage({ topic: "org.example.ok", body: { i: 1 } });
    const bad = { ...createMessage({ topic: "org.example.bad", body: {} }), body: { u: undefined } as never };
    const [ack, refused] = await tb.client().submit([good, bad]);
    expect(ack).toMatchObject({ id: good.id, duplicate: false });
    expect(refused).toBeInstanceOf(MessageRejectedError);
    expect((refused as HeraldError).message).toMatch(/body\.u is undefined/);
    expect(tb.broker.status().outbox.headSeq).toBe(1);
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

/** An app's own types, as apps write them: interfaces have no index signature, so JsonObject refused them. */
interface BuildFinished {
  build: number;
  owner: string;
  tags: string[];
  result: { ok: boolean; log: string | null };
  retries?: number;
}
interface Scheduled {
  when: Date;
}

describe("an app's own interface types publish without a cast", () => {
  it("publish, publishMany (mixed body types) and createMessage take them; what JSON cannot carry does not compile", async () => {
    const app = await startAppTestBroker(); // herald/testing's, as an app's own tests use
    try {
      await interfaceBodies(app);
    } finally {
      await app.stop();
    }
  });
});

async function interfaceBodies(app: Awaited<ReturnType<typeof startAppTestBroker>>): Promise<void> {
  const c = app.client();
  const body: BuildFinished = { build: 42, owner: "ralph", tags: ["f44"], result: { ok: true, log: null } };
  const sub = await app.subscribe(["org.example.#"]);
  await c.publish("org.example.build.finished", body);
  const acks = await c.publishMany([
    { topic: "org.example.build.finished", body: { ...body, retries: 1 } },
    { topic: "org.example.other", body: { n: 1 } },
  ]);
  expect(acks.filter((a) => a instanceof Error)).toEqual([]);
  const got: unknown[] = [];
  for await (const d of sub) {
    got.push(d.message.body);
    if (got.length === 3) break;
  }
  expect(got).toEqual([body, { ...body, retries: 1 }, { n: 1 }]);
  expect(createMessage({ topic: "org.example.t", body }).body).toEqual(body);

  // The compiler refuses what the broker would (typecheck fails if any of these starts compiling);
  // at run time each is refused as well.
  const when: Scheduled = { when: new Date() };
  // @ts-expect-error a Date field is not JSON
  await expect(c.publish("org.example.t", when)).rejects.toBeInstanceOf(MessageRejectedError);
  // @ts-expect-error a body is an object, not an array
  await expect(c.publish("org.example.t", [1, 2])).rejects.toBeInstanceOf(MessageRejectedError);
  const maybe: { n: number | undefined } = { n: undefined };
  // @ts-expect-error a field that may be undefined would vanish from the JSON
  await expect(c.publish("org.example.t", maybe)).rejects.toBeInstanceOf(MessageRejectedError);
  const mixed = await c.publishMany([
    { topic: "org.example.ok", body },
    // @ts-expect-error one input's Map is refused while the others compile
    { topic: "org.example.bad", body: { m: new Map<string, number>() } },
  ]);
  expect(mixed[1]).toBeInstanceOf(MessageRejectedError);

  // Wrappers generic over JsonObject keep compiling beside the interface form (first overload).
  const viaJsonObject = <T extends JsonObject>(b: T) => c.publish("org.example.t", b);
  const viaMany = <T extends JsonObject>(bs: T[]) =>
    c.publishMany(bs.map((b) => ({ topic: "org.example.t", body: b })));
  const viaPartial = <T extends JsonObject>(b: T, extra: Partial<T>) =>
    c.publish("org.example.t", { ...b, ...extra });
  const viaShaped = <T extends JsonShaped<T> & NotArray>(b: T) => c.publish("org.example.t", b);
  await viaJsonObject({ a: 1 });
  expect((await viaMany([{ a: 1 }, { b: 2 }])).filter((r) => r instanceof Error)).toEqual([]);
  await viaPartial({ a: 1 }, { a: 2 });
  await viaShaped(body);
  // Bodies that are no objects stay refused, by the compiler and at run time.
  // @ts-expect-error a number is no body
  await expect(c.publish("org.example.t", 5)).rejects.toBeInstanceOf(MessageRejectedError);
  // @ts-expect-error a boolean is no body
  await expect(c.publish("org.example.t", true)).rejects.toBeInstanceOf(MessageRejectedError);
  // @ts-expect-error nor is a string
  expect(() => createMessage({ topic: "org.example.t", body: "text" })).toThrow(MessageRejectedError);
}
