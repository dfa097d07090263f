/**
 * The shared transport contract: behaviour every `Transport` (memory, ZeroMQ herald/legacy, AMQP,
 * forwarding) must show. A transport test file runs it with a factory:
 *
 * ```ts
 * transportContract("zeromq herald tcp", async () => {
 *   const sender = ...;   // sends; open() may already have been called (e.g. to learn a bound port)
 *   const receiver = ...; // receives what `sender` sends; must support several concurrent receive() calls
 *   return {
 *     sender,
 *     receiver,
 *     // A new sender on the same endpoint / exchange / bus, called AFTER the suite closed `sender`
 *     // ("publisher restart"); the suite opens and closes it.
 *     restartSender: async () => ...,
 *     cleanup: async () => { ...close everything the factory made (close() is idempotent)... },
 *   };
 * }, { format: "herald", maxMessageBytes: 64 * 1024 });
 * ```
 *
 * A fresh pair is made for every test. Nothing here sleeps for a fixed time: readiness (ZeroMQ's slow
 * joiner, AMQP bindings) is established by sending probe messages until one arrives, and every wait is an
 * event-driven wait with a bounded deadline. Messages in one test use a random root word so that
 * leftovers from another test can never be mistaken for this test's.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HeraldError } from "../../src/errors.js";
import type { Delivery, Subscription, Transport } from "../../src/transport/types.js";
import { createMessage, type Message } from "../../src/wire/message.js";

export interface TransportPair {
  sender: Transport;
  receiver: Transport;
  /** A new sender on the same endpoint (called after the suite closed `sender`). */
  restartSender(): Promise<Transport>;
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** Wire format on the link; "legacy" (fedmsg) only carries id, topic, body, whole-second time, user. */
  format?: "herald" | "legacy" | "fedora-messaging";
  /**
   * The sender's limit, when it knows one: a message above it must be rejected with TOO_LARGE, not
   * dropped. Without it, the suite checks that a 256 KiB body gets through intact.
   */
  maxMessageBytes?: number;
  /** Whether received messages carry the sender's `seq`/`stream` (default true for herald format). */
  sequenced?: boolean;
  /** Bound for each wait (default 20 s). */
  timeoutMs?: number;
}

/** Reads a subscription in the background and lets tests wait for what they expect. */
export class Collector {
  readonly items: Delivery[] = [];
  /**
   * The same deliveries by topic. Waiters re-check on every delivery: scanning all items for a probe made
   * a 50,000-message flood quadratic, and under CPU load the probe after it missed its 20 s deadline.
   */
  private readonly byTopic = new Map<string, Delivery[]>();
  error: unknown;
  private readonly wakers = new Set<() => void>();

  constructor(readonly sub: Subscription) {
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      for await (const d of this.sub) {
        this.items.push(d);
        const same = this.byTopic.get(d.message.topic);
        if (same) same.push(d);
        else this.byTopic.set(d.message.topic, [d]);
        this.notify();
      }
    } catch (err) {
      this.error = err;
      this.notify();
    }
  }

  private notify(): void {
    for (const w of this.wakers) w();
  }

  /** Resolve once `pred()` holds; reject after `timeoutMs` saying what was awaited. */
  waitFor(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.items.length} received)`),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(check);
      };
      this.wakers.add(check);
    });
  }

  /** Deliveries whose topic is not a probe, i.e. the test's own messages. */
  payload(): Delivery[] {
    return this.items.filter((d) => !d.message.topic.endsWith(".probe"));
  }

  has(topic: string, key: string, value: unknown): boolean {
    return (this.byTopic.get(topic) ?? []).some((d) => d.message.body[key] === value);
  }
}

export function rootWord(): string {
  return `ct${Math.random().toString(36).slice(2, 10)}`;
}

export function msg(topic: string, body: Message["body"], extra: Partial<Message> = {}): Message {
  return { ...createMessage({ topic, body }), ...extra };
}

/**
 * Send probes (`<root>.probe`) until every collector has seen one: the link is then up end to end
 * (ZeroMQ subscriptions propagated, AMQP bindings in place). Probes of earlier calls do not count.
 */
export async function linkUp(
  sender: Transport,
  root: string,
  cols: Collector[],
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const topic = `${root}.probe`;
  const nonce = Math.random().toString(36).slice(2);
  for (let k = 0; Date.now() < deadline; k++) {
    await sender.send([msg(topic, { probe: nonce, k })]);
    const seen = (): boolean => cols.every((c) => c.has(topic, "probe", nonce));
    try {
      await Promise.all(cols.map((c) => c.waitFor(seen, "a probe", 100)));
      return;
    } catch {
      // not yet: send another probe
    }
  }
  throw new Error(`no probe on ${topic} arrived within ${timeoutMs} ms: the link never came up`);
}

/** Send a probe carrying `marker` and wait until every collector has it (everything sent before is in). */
export async function flush(
  sender: Transport,
  root: string,
  cols: Collector[],
  timeoutMs = 20_000,
): Promise<void> {
  const marker = `end-${Math.random().toString(36).slice(2)}`;
  const topic = `${root}.probe`;
  await sender.send([msg(topic, { marker })]);
  await Promise.all(
    cols.map((c) => c.waitFor(() => c.has(topic, "marker", marker), `marker ${marker}`, timeoutMs)),
  );
}

const UNICODE_BODY = {
  text: 'héllo wörld ✓ 日本語 🎉 "quoted" back\\slash\nnewline',
  nested: { list: [1, 2.5, -3, null, true, false, { deep: { deeper: ["x"] } }], empty: {}, none: [] },
  n: 0,
};

function expectSameMessage(got: Message, sent: Message, format: ContractOptions["format"]): void {
  expect(got.id).toBe(sent.id);
  expect(got.topic).toBe(sent.topic);
  expect(got.body).toEqual(sent.body);
  if (format === "legacy") {
    // fedmsg carries whole seconds and the OS user only.
    const secs = Math.floor(Date.parse(sent.sentAt) / 1000) * 1000;
    expect(Date.parse(got.sentAt)).toBe(secs);
    expect(got.origin.user).toBe(sent.origin.user);
    return;
  }
  expect(got.sentAt).toBe(sent.sentAt);
  expect(got.schema).toBe(sent.schema);
  expect(got.schemaVersion).toBe(sent.schemaVersion);
  expect(got.headers).toEqual(sent.headers);
  if (format === "herald") expect(got.origin).toEqual(sent.origin);
}

export function transportContract(
  label: string,
  makePair: () => Promise<TransportPair>,
  opts: ContractOptions = {},
): void {
  const format = opts.format ?? "herald";
  const sequenced = opts.sequenced ?? format === "herald";
  const timeout = opts.timeoutMs ?? 20_000;

  describe(`transport contract: ${label}`, () => {
    let pair: TransportPair;
    let root: string;
    const extra: Transport[] = [];
    const subs: Subscription[] = [];

    const collect = (patterns: string[]): Collector => {
      const sub = pair.receiver.receive({ patterns: [...patterns, `${root}.probe`] });
      subs.push(sub);
      return new Collector(sub);
    };

    beforeEach(async () => {
      root = rootWord();
      pair = await makePair();
      await pair.sender.open();
      await pair.receiver.open();
    });

    afterEach(async () => {
      for (const s of subs.splice(0)) await s.close();
      for (const t of extra.splice(0)) await t.close();
      await pair.cleanup();
    });

    it("open is idempotent and the link works after repeated opens", async () => {
      await pair.sender.open();
      await pair.sender.open();
      await pair.receiver.open();
      const col = collect([`${root}.#`]);
      await linkUp(pair.sender, root, [col], timeout);
      await pair.sender.open();
      await pair.sender.send([msg(`${root}.after.open`, { ok: true })]);
      await col.waitFor(() => col.has(`${root}.after.open`, "ok", true), "the message after open()", timeout);
      expect(pair.sender.health().state).not.toBe("closed");
    });

    it("delivers what was published, with every field the format carries", async () => {
      const col = collect([`${root}.#`]);
      await linkUp(pair.sender, root, [col], timeout);
      const sent = msg(`${root}.fields.check`, UNICODE_BODY, {
        schema: "contract.fields",
        schemaVersion: 3,
        headers: { "x-str": "v ✓", "x-num": 42, "x-bool": true, "x-null": null },
      });
      await pair.sender.send([sent]);
      await flush(pair.sender, root, [col], timeout);
      const got = col.payload();
      expect(got).toHaveLength(1);
      const d = got[0]!;
      expectSameMessage(d.message, sent, format);
      expect(d.format).toBe(format);
      expect(typeof d.via).toBe("string");
      if (sequenced) {
        expect(Number.isInteger(d.message.seq)).toBe(true);
        expect(d.message.seq).toBeGreaterThan(0);
        expect(d.message.stream).toEqual(expect.any(String));
      }
    });

    it("preserves order for a burst of 1,000 on one topic", async () => {
      const col = collect([`${root}.#`]);
      await linkUp(pair.sender, root, [col], timeout);
      const topic = `${root}.burst`;
      for (let b = 0; b < 10; b++)
        await pair.sender.send(Array.from({ length: 100 }, (_, k) => msg(topic, { n: b * 100 + k })));
      await flush(pair.sender, root, [col], timeout);
      const ns = col.payload().map((d) => d.message.body["n"]);
      expect(ns).toEqual(Array.from({ length: 1000 }, (_, k) => k));
      if (sequenced) {
        const seqs = col.payload().map((d) => d.message.seq ?? 0);
        for (let k = 1; k < seqs.length; k++) expect(seqs[k]).toBe(seqs[k - 1]! + 1);
      }
    });

    it("filters exactly by pattern: '*' is one word, '#' any, a longer word is no match", async () => {
      const star = collect([`${root}.a.*`]);
      const hash = collect([`${root}.a.#`]);
      const exact = collect([`${root}.a.b`]);
      await linkUp(pair.sender, root, [star, hash, exact], timeout);
      const topics = ["a.b", "a.bc", "a.b.c", "a", "x.b", "ab.c"].map((t) => `${root}.${t}`);
      await pair.sender.send(topics.map((t) => msg(t, { t })));
      await flush(pair.sender, root, [star, hash, exact], timeout);
      const seen = (c: Collector): string[] => c.payload().map((d) => d.message.topic.slice(root.length + 1));
      expect(seen(star)).toEqual(["a.b", "a.bc"]);
      expect(seen(hash)).toEqual(["a.b", "a.bc", "a.b.c", "a"]);
      expect(seen(exact)).toEqual(["a.b"]);
    });

    it("moves the health counters", async () => {
      const col = collect([`${root}.#`]);
      await linkUp(pair.sender, root, [col], timeout);
      const sentBefore = pair.sender.health().sent;
      const receivedBefore = pair.receiver.health().received;
      await pair.sender.send(Array.from({ length: 5 }, (_, n) => msg(`${root}.count`, { n })));
      await flush(pair.sender, root, [col], timeout);
      expect(pair.sender.health().sent).toBeGreaterThanOrEqual(sentBefore + 6);
      expect(pair.receiver.health().received).toBeGreaterThanOrEqual(receivedBefore + 6);
    });

    it("keeps receiving after the sender restarts mid-burst", async () => {
      const col = collect([`${root}.#`]);
      await linkUp(pair.sender, root, [col], timeout);
      const topic = `${root}.restart`;
      await pair.sender.send(Array.from({ length: 50 }, (_, n) => msg(topic, { n, part: 1 })));
      await pair.sender.close();
      const again = await pair.restartSender();
      extra.push(again);
      await again.open();
      await linkUp(again, root, [col], timeout);
      await again.send(Array.from({ length: 50 }, (_, n) => msg(topic, { n, part: 2 })));
      await flush(again, root, [col], timeout);
      const part2 = col.payload().filter((d) => d.message.body["part"] === 2);
      expect(part2.map((d) => d.message.body["n"])).toEqual(Array.from({ length: 50 }, (_, n) => n));
      if (sequenced) {
        const before = col.payload().find((d) => d.message.body["part"] === 1);
        if (before) expect(part2[0]!.message.stream).not.toBe(before.message.stream);
      }
    });

    it("close is idempotent and a send after close rejects with CLOSED", async () => {
      await pair.sender.close();
      await pair.sender.close();
      await pair.receiver.close();
      await pair.receiver.close();
      const err = await pair.sender.send([msg(`${root}.late`, { n: 1 })]).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(HeraldError);
      expect((err as HeraldError).code).toBe("CLOSED");
      expect(pair.sender.health().state).toBe("closed");
    });

    if (opts.maxMessageBytes !== undefined) {
      const limit = opts.maxMessageBytes;
      it(`rejects a message above ${limit} bytes with TOO_LARGE and keeps working`, async () => {
        const col = collect([`${root}.#`]);
        await linkUp(pair.sender, root, [col], timeout);
        const big = msg(`${root}.big`, { blob: "x".repeat(limit + 1) });
        const err = await pair.sender.send([big]).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(HeraldError);
        expect((err as HeraldError).code).toBe("TOO_LARGE");
        await pair.sender.send([msg(`${root}.small`, { ok: 1 })]);
        await flush(pair.sender, root, [col], timeout);
        expect(col.payload().map((d) => d.message.topic)).toEqual([`${root}.small`]);
      });
    } else {
      it("carries a 256 KiB body intact", async () => {
        const col = collect([`${root}.#`]);
        await linkUp(pair.sender, root, [col], timeout);
        const blob = "ü".repeat(128 * 1024);
        await pair.sender.send([msg(`${root}.big`, { blob })]);
        await flush(pair.sender, root, [col], timeout);
        expect(col.payload().map((d) => d.message.body["blob"])).toEqual([blob]);
      });
    }
  });
}
