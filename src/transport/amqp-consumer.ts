import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { ProtocolError } from "../errors.js";
import { AsyncQueue } from "../util/queue.js";
import { decodeAmqp } from "../wire/fedora-messaging.js";
import { compilePatterns, matchesAny, type TopicPattern } from "../wire/topic.js";
import { undecodableTable } from "./amqp-fields.js";
import { type AmqpLogger, backoffDelay, type ResolvedAmqpOptions } from "./amqp-options.js";
import { rateLimitedAmqpLog } from "./amqp-refusals.js";
import type { AmqpSession } from "./amqp-session.js";
import {
  bump,
  type Delivery,
  noteError,
  type ReceiveOptions,
  type Subscription,
  type TransportHealth,
} from "./types.js";

/**
 * One consumer: its own channel with a prefetch window, a named durable queue or a temporary exclusive
 * one, one binding per pattern. Rebuilt after channel or connection loss. Messages are acked only when
 * `Delivery.ack()` is called (manualAck) or, otherwise, when the reader asks for the next message. A
 * reader that reads ahead of its own consumer (the Subscriber's buffer) must use manualAck and ack what
 * its consumer is done with: auto-ack would ack what that consumer never saw.
 */
export class AmqpSubscription implements Subscription {
  private readonly queue = new AsyncQueue<Delivery>();
  private readonly patterns: TopicPattern[];
  private readonly bindings: readonly string[];
  private channel: Channel | undefined;
  private chanGen = 0;
  private opening = false;
  private failures = 0;
  private closed = false;
  private currentQueue = "";
  private readonly unlisten: () => void;
  private lastYielded: Delivery | undefined;
  /**
   * Rejections of undecodable messages: every one while they are few, then 20 a minute with the rest
   * counted (`suppressed=N`), as util/log.ts's refusalLogger; the `malformed` counter counts them all.
   */
  private readonly refusalLog: AmqpLogger;
  private markReady!: () => void;
  private readonly ready = new Promise<void>((resolve) => {
    this.markReady = resolve;
  });

  constructor(
    private readonly o: ResolvedAmqpOptions,
    private readonly session: AmqpSession,
    private readonly health: TransportHealth,
    private readonly options: ReceiveOptions,
    private readonly onClosed: (s: AmqpSubscription) => void,
  ) {
    this.bindings = options.patterns.length > 0 ? options.patterns : o.bindings;
    this.patterns = compilePatterns(this.bindings);
    this.refusalLog = rateLimitedAmqpLog(o.log, { burst: 20, key: () => "undecodable" });
    this.unlisten = session.listen({
      up: (model) => void this.openChannel(model),
      down: () => this.lost(this.chanGen),
    });
  }

  private async openChannel(model: ChannelModel): Promise<void> {
    if (this.opening || this.channel || this.closed) return;
    this.opening = true;
    let ch: Channel | undefined;
    try {
      ch = await model.createChannel();
      const gen = ++this.chanGen;
      this.attach(ch, gen);
      await ch.prefetch(this.o.prefetch);
      if (this.o.declareExchange)
        await ch.assertExchange(this.o.exchange, this.o.exchangeType, { durable: true });
      else await ch.checkExchange(this.o.exchange);
      const q = this.o.queue
        ? await ch.assertQueue(this.o.queue, { durable: true, arguments: this.o.queueArguments })
        : await ch.assertQueue("", { exclusive: true, autoDelete: true, durable: false });
      const prefix = this.o.topicPrefix;
      for (const p of this.bindings)
        await ch.bindQueue(q.queue, this.o.exchange, prefix ? `${prefix}.${p}` : p);
      this.currentQueue = q.queue;
      await ch.consume(q.queue, (m) => this.onMessage(ch!, gen, m), { noAck: false });
      if (this.closed || gen !== this.chanGen) {
        // Closed or replaced during setup: a consumer left on this channel would hold up to `prefetch`
        // messages unacked, for nobody, until the connection closes. Closing it requeues them.
        ch.close().catch(() => {});
        return;
      }
      this.channel = ch;
      this.failures = 0;
      this.markReady();
    } catch (err) {
      noteError(this.health, err);
      this.o.log("warn", `consumer setup failed: ${(err as Error).message}`);
      ch?.close().catch(() => {});
      this.retry(model);
    } finally {
      this.opening = false;
      // The connection was replaced while we were setting up: set up on the new one.
      const now = this.session.model;
      if (now && now !== model && !this.channel && !this.closed) void this.openChannel(now);
    }
  }

  /** Resolves once the queue is bound and the consumer runs (the first time). Not part of Subscription. */
  whenReady(): Promise<void> {
    return this.ready;
  }

  /** The queue consumed from (server-named for temporary queues; changes after a reconnect). */
  get queueName(): string {
    return this.currentQueue;
  }

  private retry(model: ChannelModel): void {
    if (this.closed) return;
    const delay = backoffDelay(++this.failures, this.o.reconnectInitialDelay, this.o.reconnectMaxDelay);
    setTimeout(() => {
      if (this.session.model === model) void this.openChannel(model);
    }, delay).unref();
  }

  private attach(ch: Channel, gen: number): void {
    ch.on("error", (err: Error) => {
      noteError(this.health, err);
      this.o.log("warn", `consumer channel error: ${err.message}`);
    });
    ch.on("handler-error", (err: Error) => noteError(this.health, err));
    ch.on("close", () => {
      const wasOurs = this.channel === ch;
      this.lost(gen);
      const model = this.session.model;
      if (wasOurs && model) this.retry(model);
    });
  }

  private lost(gen: number): void {
    if (gen !== this.chanGen) return;
    this.chanGen++;
    this.channel = undefined;
  }

  private onMessage(ch: Channel, gen: number, m: ConsumeMessage | null): void {
    if (m === null) {
      // The broker cancelled the consumer (queue deleted): rebuild.
      this.o.log("warn", `consumer on '${this.queueName}' was cancelled by the broker; re-subscribing`);
      ch.close().catch(() => {});
      return;
    }
    let decoded: ReturnType<typeof decodeAmqp>;
    try {
      decoded = this.decode(m);
    } catch (err) {
      // Like fedora-messaging: undecodable bodies are rejected without requeue (dead-lettered if set up).
      bump(this.health, "malformed");
      noteError(this.health, err);
      this.refusalLog(
        "warn",
        `rejecting undecodable message from '${this.queueName}': ${(err as Error).message}`,
      );
      ch.nack(m, false, false);
      return;
    }
    // What RabbitMQ routed by, as this reader bound it (its topicPrefix off): the decoded topic can differ
    // (a herald envelope's own topic, without the prefix its sink added), and must not decide.
    const key = m.fields.routingKey;
    const prefix = this.o.topicPrefix ? `${this.o.topicPrefix}.` : "";
    const routed = prefix && key.startsWith(prefix) ? key.slice(prefix.length) : key;
    if (!matchesAny(this.patterns, routed)) {
      // Bound through another pattern of a shared named queue: not for this reader.
      bump(this.health, "filtered");
      if (this.health.counters["filtered"] === 1)
        this.o.log(
          "info",
          `'${this.queueName}' holds messages bound for other readers (first: routing key '${key}'); they are acknowledged, not delivered here`,
        );
      ch.ack(m);
      return;
    }
    this.health.received++;
    let settled = false;
    const settle = (fn: () => void): Promise<void> => {
      if (settled) return Promise.resolve();
      settled = true;
      // A delivery tag is only valid on its own channel; after a reconnect the broker redelivers instead.
      if (gen !== this.chanGen) return Promise.resolve();
      try {
        fn();
      } catch (err) {
        noteError(this.health, err); // the channel is closing: the broker will redeliver
      }
      return Promise.resolve();
    };
    this.queue.push({
      message: decoded.message,
      via: `amqp:${this.queueName}`,
      format: decoded.format,
      raw: m.content,
      ack: () => settle(() => ch.ack(m)),
      nack: () => settle(() => ch.nack(m, false, false)),
    });
  }

  private decode(m: ConsumeMessage): ReturnType<typeof decodeAmqp> {
    // A header table amqp-fields.ts could not decode whole (nested too deep, unreadable) is refused here,
    // whatever the format: amqplib's own decoder would have failed the connection over it.
    const incomplete = undecodableTable(m.properties.headers);
    if (incomplete !== undefined) throw new ProtocolError(`AMQP header table ${incomplete}`);
    return decodeAmqp(
      { routingKey: m.fields.routingKey, content: m.content, properties: m.properties },
      this.o.format,
      this.o,
    );
  }

  private async autoAckPrevious(): Promise<void> {
    const prev = this.lastYielded;
    this.lastYielded = undefined;
    if (prev && !this.options.manualAck) await prev.ack();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unlisten();
    await this.autoAckPrevious();
    this.queue.close();
    const ch = this.channel;
    this.channel = undefined;
    this.chanGen++;
    // Closing the channel makes the broker requeue everything not acked.
    await ch?.close().catch(() => {});
    this.onClosed(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    return {
      next: async () => {
        await this.autoAckPrevious();
        const r = await this.queue.next();
        if (!r.done) this.lastYielded = r.value;
        return r;
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
