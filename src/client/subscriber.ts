import { HeraldError, type SecurityError } from "../errors.js";
import { type KeyLookup, type VerifyCode, verifyMessage } from "../security/sign.js";
import type { Delivery, Subscription, Transport, TransportHealth, WireFormat } from "../transport/types.js";
import { sleep } from "../util/backoff.js";
import { createLogger, type Logger, rateLimitedLogger } from "../util/log.js";
import { AsyncQueue } from "../util/queue.js";
import type { Message } from "../wire/message.js";

/** One message as a subscriber sees it, whatever wire format it arrived in. */
export interface ReceivedMessage {
  message: Message;
  format: WireFormat;
  via: string;
  /** The envelope bytes as received (for signature checks and recordings). */
  raw?: Buffer;
  /** With `verify`: the identity name whose signature checked out (the shim's, for vouched messages). */
  signer?: string;
  /** With `verify`: `"legacy"` when the signer vouches for a message ingested from a fedmsg publisher. */
  vouched?: string;
  /**
   * Acknowledge (AMQP sources); a no-op elsewhere. Without `manualAck` the subscriber acks a message
   * itself once the reader asks for the next one; call it before leaving the loop to take the message
   * in hand off the queue too (else it is redelivered: at least once).
   */
  ack(): Promise<void>;
}

/** Messages a publishing socket numbered but this subscriber never saw. */
export interface Gap {
  stream: string;
  via: string;
  /** Sequence number expected next. */
  expected: number;
  /** Sequence number that arrived instead. */
  received: number;
  missed: number;
}

export interface SubscriberOptions {
  /** Receive-side transports to read at once (ZeroMQ herald and legacy sockets, AMQP, memory). */
  sources: Transport[];
  /**
   * AMQP-style patterns; default `#`. Gaps are reported only with `#` among them: a socket numbers every
   * message it sends, so a subscriber to some topics sees the numbers of the others go by as holes.
   */
  patterns?: string[];
  /** How many recent ids to remember for cross-socket dedup (default 100,000). */
  dedupCapacity?: number;
  /**
   * Called for every gap; when absent gaps are logged as warnings (to `log`, or to stderr). Never silent
   * either way. Only when subscribed to every topic (`#`, the default); restarts are reported whatever
   * the patterns.
   */
  onGap?: (gap: Gap) => void;
  /** Called when a publisher restarted: a new stream on the same socket, or its sequence back to 1. */
  onRestart?: (stream: string, via: string) => void;
  /**
   * AMQP sources: ack only when `ReceivedMessage.ack()` is called. Otherwise a message is acked once the
   * reader asks for the next one; the one it holds when it leaves the loop (break, throw, close) and those
   * read ahead stay unacked, and RabbitMQ redelivers them after close (at least once).
   */
  manualAck?: boolean;
  /** Close the sources too when the subscriber closes (they were made for it, e.g. by `subscribe()`). */
  ownsSources?: boolean;
  /**
   * Verify every delivery end to end against this trust store (no intermediary is trusted). Failures
   * are never delivered: they are dropped, counted by code in `stats().rejected`, and passed to
   * `onRejected` (or logged as warnings). `requireSignature` (default true) also drops unsigned ones.
   * Freshness is not checked (messages legitimately wait in outboxes and queues).
   */
  verify?: { trust: KeyLookup; requireSignature?: boolean };
  onRejected?: (delivery: Delivery, error: SecurityError) => void;
  /**
   * Where gaps, verification failures and a failed source are reported (when no handler takes them).
   * Default: warnings to stderr, at most a few lines a minute per kind (the rest are counted).
   */
  log?: Logger;
}

export interface SubscriberStats {
  received: number;
  delivered: number;
  duplicates: number;
  gaps: number;
  missed: number;
  /** Deliveries dropped by `verify`, by code (BAD_SIGNATURE, UNKNOWN_KEY, REVOKED_KEY, UNSIGNED). */
  rejected: Partial<Record<VerifyCode, number>>;
}

const MAX_BUFFERED = 10_000;

/**
 * Reads any number of sources at once, normalises to one message type, delivers each id once, and
 * tracks per-stream sequence numbers to report gaps (ZeroMQ PUB drops at the high-water mark and
 * late joiners miss messages: a subscriber must know).
 */
export class Subscriber implements AsyncIterable<ReceivedMessage> {
  private readonly queue = new AsyncQueue<ReceivedMessage>(Number.POSITIVE_INFINITY, SECOND_READER);
  /** A next() is under way (see next()). */
  private reading = false;
  private readonly subs: Subscription[] = [];
  private readonly seen = new Set<string>();
  private readonly lastSeq = new Map<string, number>();
  /** The stream last seen on each socket (`via`), to tell a publisher's restart. */
  private readonly streamOf = new Map<string, string>();
  private readonly counters: SubscriberStats = {
    received: 0,
    delivered: 0,
    duplicates: 0,
    gaps: 0,
    missed: 0,
    rejected: {},
  };
  private readonly log: Logger;
  private closed = false;
  /** Without manualAck: the message the reader holds, acked once it moves past it. */
  private handed: ReceivedMessage | undefined;
  /** Subscribed to every topic: only then is a hole in a socket's numbering a lost message. */
  private readonly seesEveryTopic: boolean;

  constructor(private readonly opts: SubscriberOptions) {
    this.log = opts.log ?? defaultLog();
    const patterns = opts.patterns && opts.patterns.length > 0 ? opts.patterns : ["#"];
    this.seesEveryTopic = patterns.includes("#");
    try {
      for (const source of opts.sources) {
        // The sources never ack on their own: read ahead of the app, they would ack what it never saw.
        const sub = source.receive({ patterns, manualAck: true });
        this.subs.push(sub);
        void this.pump(sub);
      }
    } catch (err) {
      // A later source failed (a bad endpoint): the sockets already open would keep the process alive.
      void this.close();
      throw err;
    }
  }

  private async pump(sub: Subscription): Promise<void> {
    try {
      for await (const d of sub) {
        this.onDelivery(d);
        while (this.queue.size > MAX_BUFFERED && !this.closed) await sleep(5);
        if (this.closed) break;
      }
    } catch (err) {
      if (!this.closed) this.log.error("subscription failed", { err });
    }
  }

  private onDelivery(d: Delivery): void {
    this.counters.received++;
    this.trackSequence(d);
    // Verify before dedup: a forged copy must not make us drop the genuine message that follows it.
    const verified = this.verify(d);
    if (verified === false) {
      // With manualAck verify() dead-lettered it; otherwise dropped, as a source's auto-ack did.
      if (!this.opts.manualAck) void d.ack().catch(() => {});
      return;
    }
    const keys = dedupKeys(d);
    if (keys.some((k) => this.seen.has(k))) {
      this.counters.duplicates++;
      void d.ack().catch(() => {});
      return;
    }
    for (const k of keys) this.remember(k);
    this.counters.delivered++;
    const out: ReceivedMessage = { message: d.message, format: d.format, via: d.via, ack: () => d.ack() };
    if (d.raw) out.raw = d.raw;
    if (verified?.signer !== undefined) out.signer = verified.signer;
    if (verified?.vouched !== undefined) out.vouched = verified.vouched;
    this.queue.push(out);
  }

  /** undefined: no verification asked; false: dropped; else what the signature says. */
  private verify(d: Delivery): { signer?: string; vouched?: string } | false | undefined {
    const v = this.opts.verify;
    if (!v) return undefined;
    const r = verifyMessage(d.message, v.trust, {
      maxAgeMs: Number.POSITIVE_INFINITY,
      clockSkewMs: Number.POSITIVE_INFINITY,
      requireSignature: v.requireSignature ?? true,
    });
    if (r.ok)
      return {
        ...(r.identity !== undefined ? { signer: r.identity } : {}),
        ...(r.vouched !== undefined ? { vouched: r.vouched } : {}),
      };
    this.counters.rejected[r.code] = (this.counters.rejected[r.code] ?? 0) + 1;
    if (this.opts.manualAck) void d.nack().catch(() => {}); // AMQP: dead-letter, never requeue
    if (this.opts.onRejected) this.opts.onRejected(d, r.error);
    else
      this.log.warn("dropped a message that failed verification", {
        id: d.message.id,
        topic: d.message.topic,
        code: r.code,
        via: d.via,
        reason: r.error.message,
      });
    return false;
  }

  private remember(id: string): void {
    this.seen.add(id);
    if (this.seen.size > (this.opts.dedupCapacity ?? 100_000)) {
      // Sets iterate in insertion order: drop the oldest id.
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }

  private trackSequence(d: Delivery): void {
    const seq = d.message.seq;
    if (seq === undefined || !Number.isSafeInteger(seq) || seq < 1) return;
    const stream = d.message.stream ?? `${d.format}:${d.via}`;
    const last = this.lastSeq.get(stream);
    this.lastSeq.set(stream, Math.max(seq, last ?? 0));
    if (last === undefined) {
      this.newStream(stream, d.via, seq);
      return;
    }
    if (seq === last + 1 || seq <= last) {
      // A fedmsg socket's `i` has no stream id: going back means its publisher restarted.
      const restarted = seq === 1 ? last > 1 : d.message.stream === undefined && seq < last;
      if (restarted) {
        this.lastSeq.set(stream, seq);
        this.opts.onRestart?.(stream, d.via);
        if (seq > 1) this.gap({ stream, via: d.via, expected: 1, received: seq, missed: seq - 1 });
      }
      return;
    }
    this.gap({ stream, via: d.via, expected: last + 1, received: seq, missed: seq - last - 1 });
  }

  /**
   * A stream not seen before. Its first seq says nothing when we just joined; but when the same socket
   * had another stream, its publisher restarted and the new stream should start at 1 (`herald serve`
   * holds its PUB sockets back until subscribers are back): whatever came before this one is lost.
   */
  private newStream(stream: string, via: string, seq: number): void {
    const before = this.streamOf.get(via);
    this.streamOf.set(via, stream);
    if (before === undefined || before === stream) return;
    this.opts.onRestart?.(stream, via);
    if (seq > 1) this.gap({ stream, via, expected: 1, received: seq, missed: seq - 1 });
  }

  private gap(gap: Gap): void {
    if (!this.seesEveryTopic) return; // the other topics' numbers, not losses
    this.counters.gaps++;
    this.counters.missed += gap.missed;
    if (this.opts.onGap) this.opts.onGap(gap);
    else this.log.warn("gap in sequence: messages were missed", { ...gap });
  }

  stats(): SubscriberStats {
    return { ...this.counters, rejected: { ...this.counters.rejected } };
  }

  /**
   * The next message (acking the one handed before, without manualAck). `done` once closed, also over
   * messages read ahead: an AMQP source requeued them at close, and their ack could no longer be sent.
   */
  async next(): Promise<IteratorResult<ReceivedMessage>> {
    // Two next() at once would both be handed a message and the first would never be acked: refused as
    // the queue refuses a second waiting reader, also when messages are buffered.
    if (this.reading) throw new HeraldError("UNSUPPORTED", SECOND_READER);
    this.reading = true;
    try {
      await this.ackHanded();
      if (this.closed) return { value: undefined, done: true };
      const r = await this.queue.next();
      if (!r.done && !this.opts.manualAck) this.handed = r.value;
      return r;
    } finally {
      this.reading = false;
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<ReceivedMessage> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  /**
   * Each source's name, health (ZeroMQ: `state` is "up" once a socket is connected) and, for sources
   * that connect to fixed endpoints (ZmqSubscribeTransport), those endpoints.
   */
  sourceHealth(): Array<{ name: string; health: TransportHealth; endpoints?: readonly string[] }> {
    return this.opts.sources.map((s) => {
      const endpoints = (s as { endpoints?: unknown }).endpoints;
      return {
        name: s.name,
        health: s.health(),
        ...(Array.isArray(endpoints) ? { endpoints: endpoints as string[] } : {}),
      };
    });
  }

  /** The reader moved past the message it was handed: it is done with it (AMQP: ack). */
  private async ackHanded(): Promise<void> {
    const m = this.handed;
    this.handed = undefined;
    await m?.ack().catch(() => {});
  }

  /**
   * Stop. Nothing more is acked: the message the reader holds and those read ahead stay unacked, and an
   * AMQP queue redelivers them. The reader leaves its loop by break, by a throw (its work failed) or by a
   * close() during its work (a shutdown), and this cannot tell those apart: at least once, so nothing is
   * lost (a message handled and then broken out of comes again; ack() it before break to prevent that).
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.handed = undefined;
    await Promise.all(this.subs.map((s) => s.close().catch(() => {})));
    if (this.opts.ownsSources) await Promise.all(this.opts.sources.map((s) => s.close().catch(() => {})));
    this.queue.close();
  }
}

const SECOND_READER =
  "this subscriber already has a reader: one for-await loop per subscriber (make another subscriber for a second reader)";

/** Reports nobody asked for go to stderr, a few lines a minute per kind, so a flood cannot bury the rest. */
function defaultLog(): Logger {
  return rateLimitedLogger(createLogger({ component: "herald subscriber" }));
}

/**
 * The ids under which a delivery counts as seen. The legacy format writes a herald id as `<YEAR>-<id>`
 * (fedmsg's msg_id form) and only a UUIDv7 is turned back on reading, so a legacy copy of any other id
 * also counts under the id without the year.
 */
function dedupKeys(d: Delivery): string[] {
  const id = d.message.id;
  if (d.format !== "legacy") return [id];
  const m = /^\d{4}-(.+)$/.exec(id);
  return m ? [id, m[1]!] : [id];
}
