/**
 * The shared transport contract: behaviour every `Transport` with a sending and a receiving side
 * (memory, ZeroMQ herald/legacy, AMQP) must show. Forwarding only sends (its far end is another broker's
 * submit socket, no receiving transport), so it is not run here: test/forward.test.ts covers it. A
 * transport test file runs the suite with a factory:
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
import { HeraldError, MessageRejectedError } from "../../src/errors.js";
import type { Subscription, Transport } from "../../src/transport/types.js";
import type { Message } from "../../src/wire/message.js";
import { Collector, flush, linkUp, msg, rootWord } from "./collector.js";

export { Collector, flush, linkUp, msg, rootWord } from "./collector.js";

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

/** What `p` rejected or `f` threw; undefined when it succeeded. */
function refusal(p: Promise<unknown>): Promise<unknown>;
function refusal(f: () => unknown): unknown;
function refusal(x: Promise<unknown> | (() => unknown)): unknown {
  if (typeof x !== "function")
    return x.then(
      () => undefined,
      (e: unknown) => e,
    );
  try {
    x();
    return undefined;
  } catch (e) {
    return e;
  }
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
      // linkUp saw a probe of the first sender: its stream, whatever of part 1 a closing socket loses.
      const firstStream = col.items[0]?.message.stream;
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
        expect(firstStream).toEqual(expect.any(String));
        expect(part2[0]!.message.stream).not.toBe(firstStream);
      }
    });

    it("close is idempotent and a send after close rejects with CLOSED", async () => {
      await pair.sender.close();
      await pair.sender.close();
      await pair.receiver.close();
      await pair.receiver.close();
      const err = await refusal(pair.sender.send([msg(`${root}.late`, { n: 1 })]));
      expect(err).toBeInstanceOf(HeraldError);
      expect((err as HeraldError).code).toBe("CLOSED");
      expect(pair.sender.health().state).toBe("closed");
      expect(pair.receiver.health().state).toBe("closed");
    });

    it("refuses a batch holding a body JSON cannot carry, typed, delivering none of it", async () => {
      const col = collect([`${root}.#`]);
      await linkUp(pair.sender, root, [col], timeout);
      // Not dropped or rewritten on the way (a Date or Map as `{}`, a function left out): refused.
      const bodies: Record<string, unknown> = {
        bigint: { n: 10n },
        function: { n: 1, cb: () => 1 },
        date: { when: new Date(0) },
        map: { m: new Map([["a", 1]]) },
      };
      for (const [kind, body] of Object.entries(bodies)) {
        // createMessage would refuse these bodies itself: built by hand, as a sink can be handed them.
        const bad = { ...msg(`${root}.bad.${kind}`, {}), body: body as Message["body"] };
        const err = await refusal(pair.sender.send([msg(`${root}.before.${kind}`, { ok: 1 }), bad]));
        expect(err, kind).toBeInstanceOf(MessageRejectedError);
      }
      await flush(pair.sender, root, [col], timeout);
      expect(col.payload().map((d) => d.message.topic)).toEqual([]);
    });

    it("ends a subscription when its transport closes", async () => {
      const col = collect([`${root}.#`]);
      await linkUp(pair.sender, root, [col], timeout);
      await pair.receiver.close();
      await col.waitFor(() => col.ended, "the subscription to end after close()", timeout);
      expect(col.error).toBeUndefined();
    });

    it("refuses receive() on a closed transport with CLOSED", async () => {
      await pair.receiver.close();
      const err = refusal(() => subs.push(pair.receiver.receive({ patterns: [`${root}.#`] })));
      expect(err).toBeInstanceOf(HeraldError);
      expect((err as HeraldError).code).toBe("CLOSED");
    });

    if (opts.maxMessageBytes !== undefined) {
      const limit = opts.maxMessageBytes;
      it(`rejects a message above ${limit} bytes with TOO_LARGE and keeps working`, async () => {
        const col = collect([`${root}.#`]);
        await linkUp(pair.sender, root, [col], timeout);
        const big = msg(`${root}.big`, { blob: "x".repeat(limit + 1) });
        const err = await refusal(pair.sender.send([big]));
        // The dispatcher passes a message over only for a MessageRejectedError: any other error stalls it.
        expect(err).toBeInstanceOf(MessageRejectedError);
        expect((err as HeraldError).code).toBe("TOO_LARGE");
        await pair.sender.send([msg(`${root}.small`, { ok: 1 })]);
        await flush(pair.sender, root, [col], timeout);
        expect(col.payload().map((d) => d.message.topic)).toEqual([`${root}.small`]);
      });

      it(`rejects headers above ${limit} bytes with a small body, with TOO_LARGE`, async () => {
        const col = collect([`${root}.#`]);
        await linkUp(pair.sender, root, [col], timeout);
        // A fedmsg envelope carries no herald headers but the fedmsg.* ones its own fields travel in.
        const name = format === "legacy" ? "fedmsg.certificate" : "x-big";
        const m = msg(`${root}.headers`, { small: true }, { headers: { [name]: "h".repeat(limit + 1) } });
        const err = await refusal(pair.sender.send([m]));
        expect(err).toBeInstanceOf(MessageRejectedError);
        expect((err as HeraldError).code).toBe("TOO_LARGE");
        await flush(pair.sender, root, [col], timeout);
        expect(col.payload().map((d) => d.message.topic)).toEqual([]);
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
