import type { Message as AmqpMessage, ChannelModel, ConfirmChannel } from "amqplib";
import { ClosedError, type HeraldError, rejected, unencodable } from "../errors.js";
import { type AmqpFormat, encodeAmqp } from "../wire/fedora-messaging.js";
import type { Message } from "../wire/message.js";
import { type Batch, type EncodedPublish, type Entry, newEntry } from "./amqp-entry.js";
import { backoffDelay, type ResolvedAmqpOptions, repeatedPrefixCheck, sinkFormat } from "./amqp-options.js";
import {
  ExchangeGate,
  exchangeUnusable,
  isExchangeRefusal,
  publishForbidden,
  replyCode,
  unroutableNotices,
} from "./amqp-refusals.js";
import type { AmqpSession } from "./amqp-session.js";
import { bump, noteError, type TransportHealth } from "./types.js";

export type { EncodedPublish } from "./amqp-entry.js";

/**
 * Publisher confirms with a window of `inFlight` unconfirmed messages on one ConfirmChannel.
 * `send` resolves when every message of the batch is confirmed (or returned as unroutable, which is
 * final); nacks are retried with capped backoff, confirm timeouts and channel or connection loss lead to
 * republishing. It keeps waiting across reconnects: only `close()` makes it reject.
 */
export class AmqpPublisher {
  private readonly pending = new Map<string, Entry>();
  private ready: Entry[] = [];
  private readonly inflight = new Set<Entry>();
  private channel: ConfirmChannel | undefined;
  private chanGen = 0;
  private opening = false;
  private channelFailures = 0;
  private waitingDrain = false;
  private blocked = false;
  private closed = false;
  private order = 0;
  /** A 406 or 403 the server closed the channel with (error event, then close event of that generation). */
  private refusal: { gen: number; code: number; reason: string } | undefined;
  /** Ids in flight when the server refused a publish: sent one at a time until the culprit is found. */
  private readonly suspects = new Set<string>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly format: AmqpFormat;
  private readonly checkPrefix: ((topic: string) => void) | undefined;
  private readonly unlisten: () => void;
  private readonly gate = new ExchangeGate();
  private readonly noteReturned: (why: string) => void;

  constructor(
    private readonly o: ResolvedAmqpOptions,
    private readonly session: AmqpSession,
    private readonly health: TransportHealth,
  ) {
    this.format = sinkFormat(o);
    this.checkPrefix = repeatedPrefixCheck(o.topicPrefix, o.name, o.log);
    this.noteReturned = unroutableNotices(o.log);
    const tick = Math.max(20, Math.min(1000, Math.floor(o.confirmTimeout / 4)));
    this.sweeper = setInterval(() => this.sweepTimeouts(), tick);
    this.sweeper.unref();
    this.unlisten = session.listen({
      up: (model) => void this.openChannel(model),
      down: () => {
        this.channelLost(this.chanGen, "connection lost");
        this.gate.release();
      },
      blocked: () => {
        this.blocked = true;
      },
      unblocked: () => {
        this.blocked = false;
        // Time spent blocked does not count against the confirm timeout.
        const deadline = Date.now() + this.o.confirmTimeout;
        for (const e of this.inflight) e.deadline = deadline;
        this.pump();
      },
    });
  }

  /**
   * Resolves once the channel and exchange are ready (or the connection is lost); rejects with the
   * exchange refusal of the latest setup attempt, so a later successful attempt makes it resolve again.
   */
  whenReady(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError(`AMQP sink '${this.o.name}'`));
    return this.channel ? Promise.resolve() : this.gate.wait();
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  send(batch: readonly Message[]): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError(`AMQP sink '${this.o.name}'`));
    // Encode everything first: a bad message rejects the batch before anything is published.
    const fresh: EncodedPublish[] = [];
    if (this.checkPrefix) for (const m of batch) this.checkPrefix(m.topic);
    for (const m of batch) {
      if (!this.pending.has(m.id)) fresh.push({ id: m.id, pub: encodeAmqp(m, this.format, this.o) });
    }
    return this.track(
      fresh,
      batch.map((m) => m.id),
    );
  }

  /** `send` for messages encoded elsewhere (ThreadedAmqpSink encodes on the broker's thread). */
  sendEncoded(items: readonly EncodedPublish[]): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError(`AMQP sink '${this.o.name}'`));
    return this.track(
      items,
      items.map((i) => i.id),
    );
  }

  /** Queue the messages not yet pending; resolve once every message of `ids` is confirmed. */
  private track(fresh: readonly EncodedPublish[], ids: readonly string[]): Promise<void> {
    // The exchange was refused and no setup has succeeded since: fail now, as open() would.
    if (this.gate.error && !this.channel) return Promise.reject(this.gate.error);
    for (const { id, pub } of fresh) {
      if (this.pending.has(id)) continue;
      const e = newEntry(id, pub, ++this.order);
      this.pending.set(id, e);
      this.ready.push(e);
    }
    if (ids.length === 0) return Promise.resolve();
    let b!: Batch;
    const done = new Promise<void>((resolve, reject) => {
      b = { left: ids.length, resolve, reject };
    });
    // A message already pending (a retried batch) shares the outcome of the first copy: no duplicate.
    for (const id of ids) this.pending.get(id)!.batches.push(b);
    this.pump();
    return done;
  }

  private async openChannel(model: ChannelModel): Promise<void> {
    if (this.opening || this.channel || this.closed) return;
    this.opening = true;
    let ch: ConfirmChannel | undefined;
    try {
      ch = await model.createConfirmChannel();
      const gen = ++this.chanGen;
      this.attachChannel(ch, gen);
      if (this.o.declareExchange)
        await ch.assertExchange(this.o.exchange, this.o.exchangeType, { durable: true });
      else await ch.checkExchange(this.o.exchange);
      if (this.closed || gen !== this.chanGen) {
        ch.close().catch(() => {}); // closed or replaced meanwhile: do not leave the channel open
        return;
      }
      // channelFailures is reset by a confirmed publish, not here: a channel the server closes on every
      // publish sets up fine each time, and would otherwise be reopened every 100 ms forever.
      this.channel = ch;
      this.waitingDrain = false;
      this.blocked = this.session.blockedReason !== undefined;
      this.gate.ready();
      this.pump();
    } catch (err) {
      noteError(this.health, err);
      this.o.log("warn", `publisher channel setup failed: ${(err as Error).message}`);
      ch?.close().catch(() => {});
      if (isExchangeRefusal(err) && !this.closed) {
        // Retrying cannot fix the exchange (the retries go on, to notice it being created or fixed):
        // open() and every waiting send fail with the typed error now instead of waiting forever.
        const typed = exchangeUnusable(this.o, err);
        noteError(this.health, typed);
        this.gate.refuse(typed);
        this.failPending(typed);
      }
      this.retryChannel(model);
    } finally {
      this.opening = false;
      // The connection was replaced while we were setting up: set up on the new one.
      const now = this.session.model;
      if (now && now !== model && !this.channel && !this.closed) void this.openChannel(now);
    }
  }

  private retryChannel(model: ChannelModel): void {
    if (this.closed) return;
    const delay = backoffDelay(
      ++this.channelFailures,
      this.o.reconnectInitialDelay,
      this.o.reconnectMaxDelay,
    );
    setTimeout(() => {
      if (this.session.model === model) void this.openChannel(model);
    }, delay).unref();
  }

  private attachChannel(ch: ConfirmChannel, gen: number): void {
    // An unhandled channel error would take the whole connection (and process) down.
    ch.on("error", (err: Error) => {
      noteError(this.health, err);
      this.o.log("warn", `publisher channel error: ${err.message}`);
      // On a publish, PRECONDITION_FAILED: a message this server will never take (over max_message_size);
      // ACCESS_REFUSED: an internal exchange or missing write permission.
      const code = replyCode(err);
      if ((code === 406 || code === 403) && this.channel === ch)
        this.refusal = { gen, code, reason: err.message };
    });
    ch.on("handler-error", (err: Error) => noteError(this.health, err));
    ch.on("close", () => {
      const model = this.session.model;
      const wasOurs = gen === this.chanGen && this.channel === ch;
      const refusal = this.refusal?.gen === gen && wasOurs ? this.refusal : undefined;
      if (refusal?.code === 403) this.forbidden(refusal.reason);
      else if (refusal) this.refused(refusal.reason);
      this.refusal = undefined;
      this.channelLost(gen, "channel closed");
      if (wasOurs && model && !this.closed) this.retryChannel(model);
    });
    ch.on("drain", () => {
      if (gen !== this.chanGen) return;
      this.waitingDrain = false;
      this.pump();
    });
    // The broker sends basic.return before basic.ack; it has no delivery tag, so match by message id.
    ch.on("return", (m: AmqpMessage) => {
      const e = this.pending.get(String(m.properties.messageId));
      if (e && e.inflightOn === gen) e.returned = true;
    });
  }

  /**
   * The server closed the channel over one of the publishes in flight. With one in flight (isolating),
   * that one is refused for good; otherwise they are republished one at a time to find it, so that one
   * message never closes the channel over and over while the rest wait behind it.
   */
  private refused(reason: string): void {
    const only = this.inflight.size === 1 ? [...this.inflight][0] : undefined;
    if (only !== undefined && this.suspects.has(only.id)) {
      this.suspects.delete(only.id);
      const code = /larger than configured max size/.test(reason) ? "TOO_LARGE" : "INVALID";
      this.refuse(only, rejected(code, `RabbitMQ refused message ${only.id}: ${reason}`, { id: only.id }));
      return;
    }
    for (const e of this.inflight) this.suspects.add(e.id);
    this.o.log("warn", `RabbitMQ refused a publish (${reason}): republishing one at a time to find it`);
  }

  /** The server refused the publishes in flight (403): they fail, not retryable, instead of looping. */
  private forbidden(reason: string): void {
    const err = publishForbidden(this.o, reason);
    this.o.log("error", err.message);
    noteError(this.health, err);
    for (const e of [...this.inflight]) this.drop(e, err);
  }

  /** Everything in flight on a lost channel goes back to the front of the queue, in original order. */
  private channelLost(gen: number, why: string): void {
    if (gen !== this.chanGen) return;
    this.chanGen++;
    this.channel = undefined;
    this.waitingDrain = false;
    const back = [...this.inflight].sort((a, b) => a.order - b.order);
    this.inflight.clear();
    for (const e of back) e.inflightOn = undefined;
    if (back.length > 0) {
      bump(this.health, "republished", back.length);
      this.o.log("info", `${why}: republishing ${back.length} unconfirmed messages`);
    }
    this.ready = back.concat(this.ready);
  }

  private pump(): void {
    const ch = this.channel;
    if (!ch || this.closed || this.blocked || this.waitingDrain) return;
    const window = this.suspects.size > 0 ? 1 : this.o.inFlight;
    while (this.ready.length > 0 && this.inflight.size < window) {
      const e = this.ready.shift()!;
      if (!this.pending.has(e.id)) continue;
      if (!this.publishOne(ch, e)) {
        // publish() returning false means "buffered, wait for drain": do not publish it again.
        this.waitingDrain = true;
        return;
      }
      if (this.channel !== ch) return;
    }
  }

  private publishOne(ch: ConfirmChannel, e: Entry): boolean {
    const gen = this.chanGen;
    const attempt = ++e.attempt;
    e.returned = false;
    e.inflightOn = gen;
    e.deadline = Date.now() + this.o.confirmTimeout;
    this.inflight.add(e);
    try {
      return ch.publish(this.o.exchange, e.pub.routingKey, e.pub.content, e.options, (err: unknown) =>
        this.onConfirm(e, attempt, gen, err),
      );
    } catch (err) {
      if (err instanceof Error && err.name === "IllegalOperationError") {
        // The channel closed under us: its close handler requeues.
        noteError(this.health, err);
        this.channelLost(gen, "publish on a closed channel");
        return true;
      }
      // amqplib could not encode it (a header name over 255 bytes, a header table over 64 KiB) and the
      // channel is fine: this message can never be published here.
      this.refuse(e, unencodable(e.id, this.format, err));
      return true;
    }
  }

  /** Fail a message's batches with MessageRejectedError: the dispatcher passes it over for this sink. */
  private refuse(e: Entry, err: HeraldError): void {
    bump(this.health, "unencodable");
    noteError(this.health, err);
    this.drop(e, err);
  }

  /** Forget a message and fail the sends waiting for it. */
  private drop(e: Entry, err: HeraldError): void {
    this.inflight.delete(e);
    e.inflightOn = undefined;
    if (e.retryTimer) clearTimeout(e.retryTimer);
    this.pending.delete(e.id);
    this.suspects.delete(e.id);
    for (const b of e.batches) b.reject(err);
  }

  /** Fail every send still waiting (a refused exchange, or close). */
  private failPending(err: HeraldError): void {
    for (const e of [...this.pending.values()]) this.drop(e, err);
    this.ready = [];
  }

  private onConfirm(e: Entry, attempt: number, gen: number, err: unknown): void {
    if (e.attempt !== attempt || e.inflightOn !== gen || this.pending.get(e.id) !== e) return;
    if (err && !(err instanceof Error && err.message === "message nacked")) return; // channel closed: requeued
    this.inflight.delete(e);
    e.inflightOn = undefined;
    if (err) this.nacked(e);
    else {
      this.channelFailures = 0; // this channel works: its loss starts the backoff afresh
      this.settle(e);
    }
    this.pump();
  }

  private settle(e: Entry): void {
    this.pending.delete(e.id);
    this.suspects.delete(e.id);
    if (e.returned) {
      bump(this.health, "returned");
      const why = `unroutable: message ${e.id} (routing key '${e.pub.routingKey}') was returned by exchange '${this.o.exchange}' because no queue is bound for it; bind a queue or accept the loss`;
      noteError(this.health, why);
      this.noteReturned(why);
    } else this.health.sent++;
    for (const b of e.batches) if (--b.left === 0) b.resolve();
  }

  private nacked(e: Entry): void {
    e.nacks++;
    bump(this.health, "nacked");
    const delay = backoffDelay(e.nacks, this.o.retryInitialDelay, this.o.retryMaxDelay);
    noteError(this.health, `broker nacked message ${e.id} (attempt ${e.nacks}); retrying in ${delay} ms`);
    e.retryTimer = setTimeout(() => {
      e.retryTimer = undefined;
      if (this.pending.get(e.id) !== e) return;
      this.ready.push(e);
      this.pump();
    }, delay);
  }

  private sweepTimeouts(): void {
    if (this.blocked || this.inflight.size === 0) return;
    const now = Date.now();
    const late = [...this.inflight].filter((e) => e.deadline <= now).sort((a, b) => a.order - b.order);
    if (late.length === 0) return;
    for (const e of late) {
      this.inflight.delete(e);
      e.inflightOn = undefined;
      e.attempt++; // a late confirm of the old attempt is ignored
    }
    bump(this.health, "confirmTimeouts", late.length);
    noteError(
      this.health,
      `${late.length} publishes not confirmed within ${this.o.confirmTimeout} ms; republishing`,
    );
    this.ready = late.concat(this.ready);
    this.pump();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unlisten();
    clearInterval(this.sweeper);
    const err = new ClosedError(`AMQP sink '${this.o.name}'`);
    this.failPending(err);
    this.gate.close(err);
    const ch = this.channel;
    this.channel = undefined;
    await ch?.close().catch(() => {});
  }
}
