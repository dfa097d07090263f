import { HeraldError, SecurityError } from "../errors.js";
import type { Delivery, Subscription, Transport } from "../transport/types.js";
import { backoffDelay, sleep } from "../util/backoff.js";
import { type Logger, rateLimitedLogger } from "../util/log.js";
import type { SourceStatus } from "./broker.js";
import type { Submitter } from "./local-submit.js";

export interface SourceIngestCounters {
  ingested: number;
  duplicates: number;
  refused: number;
  retries: number;
}

/**
 * Feeds a receive-side transport (an AMQP queue, e.g. fedora-messaging traffic) into the local broker.
 * Each message is acknowledged to its source only after the broker acknowledged it (stored), so a crash
 * anywhere redelivers instead of losing; ids are kept, so the broker's dedup drops the repeats. A message
 * the broker refuses for good (bad topic, policy) is rejected at the source (dead-lettered by RabbitMQ
 * when the queue has a dead-letter exchange), counted and logged, never retried forever. Anyone who can
 * publish to the exchange can send such messages, so the warnings about them are rate-limited.
 */
export class SourceIngest {
  private sub: Subscription | undefined;
  private readonly waiting: Delivery[] = [];
  private wake: (() => void) | undefined;
  private closed = false;
  /** Aborted by stop(): cuts short the backoff sleeps (up to 10 s) and a start still connecting. */
  private readonly stopping = new AbortController();
  private loops: Promise<void>[] = [];
  readonly counters: SourceIngestCounters = { ingested: 0, duplicates: 0, refused: 0, retries: 0 };
  private readonly refusalLog: Logger;

  constructor(
    private readonly source: Transport,
    private readonly patterns: readonly string[],
    private readonly client: Submitter,
    private readonly log: Logger,
    private readonly maxBatch = 500,
    /** At most one warning about refused messages per this many ms; the others are summed into it. */
    warnEveryMs = 10_000,
  ) {
    // The first at once, then at most one per window with the count held back (`suppressed`), always
    // counted in `refused`: a source anyone may publish to must not be able to flood the log.
    this.refusalLog = rateLimitedLogger(log, { burst: 1, intervalMs: warnEveryMs });
  }

  /**
   * Open the source and start reading. A stop() meanwhile rejects it at once: a server that accepts the
   * TCP connection but never answers would otherwise hold `herald serve`'s start (and its SIGTERM) for
   * the connect timeout.
   */
  async start(): Promise<void> {
    await untilAborted(this.source.open(), this.stopping.signal);
    if (this.closed) throw this.stopping.signal.reason;
    this.sub = this.source.receive({ patterns: this.patterns, manualAck: true });
    this.loops = [this.read(this.sub), this.submitLoop()];
  }

  private async read(sub: Subscription): Promise<void> {
    try {
      for await (const d of sub) {
        this.waiting.push(d);
        this.wake?.();
      }
    } catch (err) {
      if (!this.closed) this.log.error("source failed", { source: this.source.name, err });
    }
  }

  private async submitLoop(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      if (this.waiting.length === 0) {
        await new Promise<void>((r) => {
          this.wake = r;
        });
        this.wake = undefined;
        continue;
      }
      const batch = this.waiting.slice(0, this.maxBatch);
      try {
        const results = await this.client.submit(batch.map((d) => d.message));
        this.waiting.splice(0, batch.length);
        const again = await Promise.all(results.map((r, i) => this.settle(batch[i]!, r)));
        // Put back in front, in their order: what arrived meanwhile must not overtake them.
        const retry = batch.filter((_, i) => again[i]);
        this.waiting.unshift(...retry);
        // Messages the broker cannot take now (outbox full) wait out a backoff, not a busy loop.
        if (retry.length > 0) await sleep(backoffDelay(attempt++), this.stopping.signal);
        else attempt = 0;
      } catch (err) {
        if (this.closed) return;
        this.counters.retries++;
        if (attempt % 10 === 0)
          this.log.warn("broker unavailable for source ingest; retrying", { source: this.source.name, err });
        await sleep(backoffDelay(attempt++), this.stopping.signal);
      }
    }
  }

  /** Ack or nack one delivery by its result; true when it is to be tried again (the broker is busy). */
  private async settle(d: Delivery, r: Awaited<ReturnType<Submitter["submit"]>>[number]): Promise<boolean> {
    if (!(r instanceof HeraldError)) {
      if (r.duplicate) this.counters.duplicates++;
      else this.counters.ingested++;
      await d.ack();
      return false;
    }
    if (retryLater(r)) return true;
    this.counters.refused++;
    this.refusalLog.warn(
      "message from source refused by the broker: rejected at the source (dead-lettered if its queue has a dead-letter exchange)",
      { source: this.source.name, id: d.message.id, code: r.code, reason: r.message },
    );
    await d.nack();
    return false;
  }

  status(): SourceStatus {
    return {
      name: this.source.name,
      kind: this.source.kind,
      waiting: this.waiting.length,
      counters: { ...this.counters },
      health: this.source.health(),
    };
  }

  async stop(): Promise<void> {
    this.closed = true;
    this.stopping.abort(stoppedDuringStart(this.source.name));
    this.wake?.();
    await this.sub?.close();
    await this.source.close();
    await Promise.all(this.loops);
  }
}

/**
 * Keep a refused message for another try? Only when the broker cannot take anything now (outbox full,
 * shutting down, storage): then every message waits alike, in order. A refusal of the message itself is
 * final even when its code is retryable: FORWARD_REFUSED is, for a forwarding broker that may be listed
 * later, but a source can never become one (BrokerSecurity.viaStanding), and a security refusal is about
 * the message or its sender, which sending it again does not change. Kept for another try, it would hold
 * the head of the queue and, once the prefetch is full of them, every later message, forever.
 */
function retryLater(r: HeraldError): boolean {
  return r.retryable && !(r instanceof SecurityError);
}

/** `work`, or a rejection as soon as `signal` aborts (`work` then goes on unobserved: its end is ignored). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function stoppedDuringStart(source: string): HeraldError {
  return new HeraldError("CLOSED", `source ingest '${source}' was stopped while it started`);
}
