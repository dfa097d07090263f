import { ClosedError } from "../errors.js";
import type { Delivery, Subscription, Transport, WireFormat } from "../transport/types.js";
import { sleep } from "../util/backoff.js";
import { type Logger, silentLogger } from "../util/log.js";
import { AsyncQueue } from "../util/queue.js";
import type { Message } from "../wire/message.js";

/** One message as a subscriber sees it, whatever wire format it arrived in. */
export interface ReceivedMessage {
  message: Message;
  format: WireFormat;
  via: string;
  /** The envelope bytes as received (for signature checks and recordings). */
  raw?: Buffer;
  /** Acknowledge (AMQP sources with manual ack); a no-op elsewhere. */
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
  /** AMQP-style patterns; default `#`. */
  patterns?: string[];
  /** How many recent ids to remember for cross-socket dedup (default 100,000). */
  dedupCapacity?: number;
  /** Called for every gap; when absent gaps are logged as warnings. Never silent either way. */
  onGap?: (gap: Gap) => void;
  /** Called when a stream restarts (publisher restarted: sequence went back to 1). */
  onRestart?: (stream: string, via: string) => void;
  manualAck?: boolean;
  log?: Logger;
}

export interface SubscriberStats {
  received: number;
  delivered: number;
  duplicates: number;
  gaps: number;
  missed: number;
}

const MAX_BUFFERED = 10_000;

/**
 * Reads any number of sources at once, normalises to one message type, delivers each id once, and
 * tracks per-stream sequence numbers to report gaps (ZeroMQ PUB drops at the high-water mark and
 * late joiners miss messages: a subscriber must know).
 */
export class Subscriber implements AsyncIterable<ReceivedMessage> {
  private readonly queue = new AsyncQueue<ReceivedMessage>();
  private readonly subs: Subscription[] = [];
  private readonly seen = new Set<string>();
  private readonly lastSeq = new Map<string, number>();
  private readonly counters: SubscriberStats = {
    received: 0,
    delivered: 0,
    duplicates: 0,
    gaps: 0,
    missed: 0,
  };
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: SubscriberOptions) {
    this.log = opts.log ?? silentLogger;
    const patterns = opts.patterns && opts.patterns.length > 0 ? opts.patterns : ["#"];
    for (const source of opts.sources) {
      const sub = source.receive({ patterns, manualAck: opts.manualAck ?? false });
      this.subs.push(sub);
      void this.pump(sub);
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
    const id = d.message.id;
    if (this.seen.has(id)) {
      this.counters.duplicates++;
      void d.ack();
      return;
    }
    this.remember(id);
    this.counters.delivered++;
    const out: ReceivedMessage = { message: d.message, format: d.format, via: d.via, ack: () => d.ack() };
    if (d.raw) out.raw = d.raw;
    this.queue.push(out);
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
    if (seq === undefined) return;
    const stream = d.message.stream ?? `${d.format}:${d.via}`;
    const last = this.lastSeq.get(stream);
    this.lastSeq.set(stream, Math.max(seq, last ?? 0));
    if (last === undefined) return; // first message of a stream seen by us: nothing to compare with
    if (seq === last + 1 || seq <= last) {
      if (seq === 1 && last > 1) {
        this.lastSeq.set(stream, 1);
        this.opts.onRestart?.(stream, d.via);
      }
      return;
    }
    const gap: Gap = { stream, via: d.via, expected: last + 1, received: seq, missed: seq - last - 1 };
    this.counters.gaps++;
    this.counters.missed += gap.missed;
    if (this.opts.onGap) this.opts.onGap(gap);
    else this.log.warn("gap in sequence: messages were missed", { ...gap });
  }

  stats(): SubscriberStats {
    return { ...this.counters };
  }

  next(): Promise<IteratorResult<ReceivedMessage>> {
    if (this.closed && this.queue.size === 0) return Promise.reject(new ClosedError("subscriber"));
    return this.queue.next();
  }

  [Symbol.asyncIterator](): AsyncIterator<ReceivedMessage> {
    return {
      next: () => this.queue.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.subs.map((s) => s.close().catch(() => {})));
    this.queue.close();
  }
}
