import type { Message } from "../wire/message.js";

/**
 * Envelope bytes waiting for the broker (read, not yet taken), as the submit server's MAX_IN_FLIGHT_BYTES.
 * Past it what arrives is dropped and counted (`dropped`): PUB/SUB cannot push back on a publisher, and
 * leaving it in libzmq would only move the loss into the publisher's PUB, which counts nothing. A broker
 * that keeps up holds a few messages here; a full queue means it is down or far behind. Before, only a count
 * (100,000) bounded it: 1,293 envelopes of 3 MiB took `herald serve` to 5.3 GB.
 */
export const MAX_QUEUED_BYTES = 64 << 20;

/**
 * Envelope bytes of one submit: the broker validates a batch in one synchronous go, during which nothing
 * else in the process runs (1,000 envelopes of 3 MiB were ~3 GB at once).
 */
export const MAX_BATCH_BYTES = 8 << 20;

export interface Pending {
  service: string;
  message: Message;
  /** Its envelope's size: what the byte bounds count. */
  bytes: number;
}

/** What waits for the broker now (the batch being submitted included), and the most bytes it held. */
export interface IngestQueueState {
  messages: number;
  bytes: number;
  peakBytes: number;
}

export interface QueueLimits {
  maxMessages: number;
  maxBytes: number;
  batchMessages: number;
  batchBytes: number;
}

/** Ingested messages waiting for the broker, in order, bounded in messages and in envelope bytes. */
export class IngestQueue {
  private items: Pending[] = [];
  private bytes = 0;
  private peakBytes = 0;

  constructor(private readonly limits: QueueLimits) {}

  get length(): number {
    return this.items.length;
  }

  get queuedBytes(): number {
    return this.bytes;
  }

  state(): IngestQueueState {
    return { messages: this.items.length, bytes: this.bytes, peakBytes: this.peakBytes };
  }

  /** No room for one more envelope of `bytes`? One always fits an empty queue, whatever its size. */
  full(bytes: number): boolean {
    if (this.items.length === 0) return false;
    if (this.items.length >= this.limits.maxMessages) return true;
    return this.bytes + bytes > this.limits.maxBytes;
  }

  /** Add at the tail, or back at the head (messages to retry, in their order). */
  push(items: Pending[], atHead = false): void {
    if (atHead) this.items.unshift(...items);
    else this.items.push(...items);
    for (const p of items) this.bytes += p.bytes;
    this.peakBytes = Math.max(this.peakBytes, this.bytes);
  }

  /** The next batch, left in the queue until `remove`: up to the batch limits, at least one message. */
  head(): Pending[] {
    let n = 0;
    let bytes = 0;
    for (const p of this.items) {
      if (n >= this.limits.batchMessages || (n > 0 && bytes + p.bytes > this.limits.batchBytes)) break;
      n++;
      bytes += p.bytes;
    }
    return this.items.slice(0, n);
  }

  remove(start: number, count = this.items.length): Pending[] {
    const out = this.items.splice(start, count);
    for (const p of out) this.bytes -= p.bytes;
    return out;
  }
}
