import { ClosedError } from "../errors.js";
import type { Message } from "../wire/message.js";
import { AmqpSubscription } from "./amqp-consumer.js";
import { type AmqpTransportOptions, type ResolvedAmqpOptions, resolveAmqpOptions } from "./amqp-options.js";
import { AmqpPublisher, type EncodedPublish } from "./amqp-publisher.js";
import { AmqpSession } from "./amqp-session.js";
import { initialHealth, type ReceiveOptions, type Transport, type TransportHealth } from "./types.js";

export { AmqpSubscription } from "./amqp-consumer.js";
export type { AmqpLogger, AmqpTransportOptions } from "./amqp-options.js";
export { buildConnectArgs, resolveAmqpOptions } from "./amqp-options.js";

const COUNTERS = [
  "returned",
  "nacked",
  "reconnects",
  "malformed",
  "confirmTimeouts",
  "republished",
  "blocked",
  "filtered",
];

/**
 * AMQP 0-9-1 (RabbitMQ) sink and source. See docs/amqp.md.
 * Sink: persistent, mandatory publishes with publisher confirms; `send` resolves once the broker has
 * confirmed every message of the batch. Source: a consumer per `receive()` with manual acks.
 * One connection per transport, recovered by herald itself.
 */
export class AmqpTransport implements Transport {
  readonly kind = "amqp";
  readonly name: string;
  private readonly o: ResolvedAmqpOptions;
  private readonly state: TransportHealth = initialHealth();
  private readonly session: AmqpSession;
  private readonly publisher: AmqpPublisher;
  private readonly subs = new Set<AmqpSubscription>();
  private opened: Promise<void> | undefined;
  private closed = false;

  constructor(options: AmqpTransportOptions) {
    this.o = resolveAmqpOptions(options);
    this.name = this.o.name;
    for (const c of COUNTERS) this.state.counters[c] = 0;
    this.session = new AmqpSession(this.o, this.state);
    this.publisher = new AmqpPublisher(this.o, this.session, this.state);
  }

  /**
   * Connect and declare the exchange. Resolves in state "down" (retrying in the background) when the
   * broker is unreachable; rejects when the broker refuses the credentials or the exchange check fails.
   */
  open(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError(`AMQP transport '${this.name}'`));
    // A refused open is not memoized: the next open() or send() tries again.
    this.opened ??= this.doOpen().catch((err: unknown) => {
      this.opened = undefined;
      throw err;
    });
    return this.opened;
  }

  private async doOpen(): Promise<void> {
    await this.session.start();
    if (!this.session.isUp) return;
    try {
      // Asked afresh on every open(): a refusal an earlier attempt saw is gone once the exchange is fixed.
      await this.publisher.whenReady();
    } catch (err) {
      if (!this.session.isUp || this.closed) return; // connection lost meanwhile: keep retrying
      throw err; // the publisher's typed TRANSPORT error, naming the fix
    }
  }

  /**
   * Resolves when the broker has confirmed every message (returned unroutable ones count as handled).
   * Waits across reconnects and republishes what was unconfirmed; rejects with CLOSED, or with a
   * non-retryable TRANSPORT error when the broker refuses the credentials or the exchange.
   */
  async send(batch: readonly Message[]): Promise<void> {
    if (this.closed) throw new ClosedError(`AMQP transport '${this.name}'`);
    // Rejects only for refused credentials or a bad exchange; an unreachable broker resolves ("down").
    // A bad exchange found after open() resolved "down" fails the waiting send in the publisher.
    await this.open();
    await this.publisher.send(batch);
  }

  /** `send` for publishes encoded by the caller (ThreadedAmqpSink encodes on the broker's thread). */
  async sendEncoded(items: readonly EncodedPublish[]): Promise<void> {
    if (this.closed) throw new ClosedError(`AMQP transport '${this.name}'`);
    await this.open();
    await this.publisher.sendEncoded(items);
  }

  /** The returned subscription is an AmqpSubscription: `whenReady()` says when the queue is bound. */
  receive(options: ReceiveOptions): AmqpSubscription {
    if (this.closed) throw new ClosedError(`AMQP transport '${this.name}'`);
    if (!this.opened) void this.open().catch(() => {});
    const sub = new AmqpSubscription(this.o, this.session, this.state, options, (s) => this.subs.delete(s));
    this.subs.add(sub);
    return sub;
  }

  health(): TransportHealth {
    const h = structuredClone(this.state);
    h.counters["pending"] = this.publisher.pendingCount;
    return h;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.subs].map((s) => s.close()));
    await this.publisher.close();
    await this.session.close();
    this.state.state = "closed";
  }
}
