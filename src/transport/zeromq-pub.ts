import { hostname } from "node:os";
import * as zmq from "zeromq";
import { ClosedError, HeraldError, rejected, TransportError, unencodable } from "../errors.js";
import { bindRetryingEagain, retryInterrupted } from "../util/zeromq.js";
import { stampedEnvelopeText } from "../wire/herald.js";
import { legacyEnvelopeText } from "../wire/legacy.js";
import type { Message } from "../wire/message.js";
import {
  bump,
  initialHealth,
  noteError,
  type ReceiveOptions,
  type Subscription,
  type Transport,
  type TransportHealth,
} from "./types.js";
import {
  type CurveServerOptions,
  commonSocketOptions,
  curveServerOptions,
  DEFAULT_MAX_MESSAGE_BYTES,
  type HeartbeatOptions,
  quietLogger,
  randomTag,
  type TransportLogger,
  translateZmqError,
} from "./zeromq-common.js";
import {
  type PeerEvent,
  type SubscriberInfo,
  SubscriberTracker,
  type SubscriptionEvent,
} from "./zeromq-subscribers.js";

export type { PeerEvent, SubscriberInfo, SubscriptionEvent } from "./zeromq-subscribers.js";

export interface ZmqPublishOptions {
  /** Sink name from configuration (broker.publish[n].name). */
  name: string;
  /** Where to bind: tcp://127.0.0.1:9941, tcp://127.0.0.1:* (read `lastEndpoint`), ipc:///run/herald/pub.sock. */
  endpoint: string;
  format: "herald" | "legacy";
  /** This broker's name; the stream id is `<brokerName>/<name>/<random>`. Default: the host name. */
  brokerName?: string;
  /**
   * Messages queued per subscriber before the PUB socket drops for that subscriber (broker.sendHighWaterMark).
   * Default 10000. 0 means unlimited, which lets one stuck subscriber eat the broker's memory: avoid it.
   */
  sendHighWaterMark?: number;
  /** Largest envelope frame sent; bigger messages are rejected with TOO_LARGE. Default 4 MiB. */
  maxMessageBytes?: number;
  /**
   * What the TOO_LARGE error tells the user to do: where `maxMessageBytes` comes from and how to raise
   * it (`herald serve` derives it from limits.maxBodyBytes). Default: raise maxMessageBytes.
   */
  tooLargeHint?: string;
  heartbeat?: HeartbeatOptions | false;
  /** CURVE server keys (Z85). Only a ZAP handler bound on inproc://zeromq.zap.01 decides who may connect. */
  curve?: CurveServerOptions | undefined;
  zapDomain?: string;
  /** Use an XPUB socket and report every subscribe/unsubscribe (the migration shim's listener evidence). */
  xpub?: boolean;
  /** ms that unsent messages may delay close at process exit. Default 500. */
  linger?: number;
  /** Batches waiting for the socket before send() rejects with a retryable error. Default 64. */
  maxQueuedBatches?: number;
  logger?: TransportLogger;
}

/**
 * `[topic, envelope]` as text. zeromq.js copies a string into the message it queues, while a Buffer over 128
 * bytes is sent zero-copy and held by a reference that the I/O thread hands back to the JavaScript thread
 * later: those Buffers outlived young-generation GCs, and their 8 KiB pool slabs piled up in the malloc
 * arena until a full GC. Filling a 1M backlog, the arena held 135 MB with Buffer frames and 49 MB with
 * text (RSS 248 against 161 MB), the same bytes on the wire.
 */
type TextFrames = [string, string];

interface WriteJob {
  frames: TextFrames[];
  /** UTF-8 bytes of each message's two frames (the stats' byte counter). */
  sizes: number[];
  resolve: () => void;
  reject: (err: HeraldError) => void;
}

/** Subscription frames are a flag byte and a topic prefix (<= 255 bytes); nothing legitimate is bigger. */
const PUB_INBOUND_MAX = 64 * 1024;
/**
 * Give timers, monitor events, the XPUB reader and the submit socket a turn during large batches. With a
 * zero send timeout zeromq.js no longer defers every 512th send itself, so this is the only yield: kept at
 * its 512, a pause of a few ms at most.
 */
const YIELD_EVERY = 512;

/**
 * Fan-out of herald or fedmsg frames on one bound PUB (or XPUB) socket.
 *
 * High-water-mark policy: a slow subscriber must never block the broker. A ZeroMQ PUB socket keeps a
 * queue of at most `sendHighWaterMark` messages per connected subscriber; when that subscriber's queue is
 * full, further messages for *it alone* are dropped (libzmq counts nothing) while every other subscriber
 * keeps receiving. `socket.send()` on a PUB therefore always resolves at once, so a batch is "taken" as
 * soon as it is written to the socket. Subscribers detect the loss from the per-socket `seq` (herald) or
 * `i` (legacy) gaps. See docs/wire-format.md, "ZeroMQ PUB sockets and the high-water mark".
 *
 * One owner per socket: zeromq.js allows one pending send per socket (a second gets EBUSY), so every
 * batch goes through a bounded FIFO drained by a single writer loop.
 */
export class ZmqPublishTransport implements Transport {
  readonly kind = "zeromq";
  readonly name: string;
  private readonly opts: ZmqPublishOptions;
  private readonly log: TransportLogger;
  private readonly state: TransportHealth = initialHealth();
  private socket: zmq.Publisher | zmq.XPublisher | undefined;
  private opening: Promise<void> | undefined;
  private bound: string | undefined;
  private streamId = "";
  private seq = 0;
  private readonly jobs: WriteJob[] = [];
  private writing = false;
  private closed = false;
  private readonly tracker = new SubscriberTracker();

  constructor(opts: ZmqPublishOptions) {
    this.opts = opts;
    this.name = opts.name;
    this.log = opts.logger ?? quietLogger;
  }

  /** The endpoint as configured, known before open (the broker checks ipc:// ones are free first). */
  get endpoint(): string {
    return this.opts.endpoint;
  }

  /** The endpoint actually bound (the real port for `tcp://host:*`); undefined before open. */
  get lastEndpoint(): string | undefined {
    return this.bound;
  }

  /** This socket run's stream id (changes on every open); `seq` restarts at 1 with it. */
  get stream(): string {
    return this.streamId;
  }

  get format(): "herald" | "legacy" {
    return this.opts.format;
  }

  open(): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError(this.what()));
    this.opening ??= this.doOpen().catch((err: unknown) => {
      this.opening = undefined;
      throw err;
    });
    return this.opening;
  }

  private async doOpen(): Promise<void> {
    const { opts } = this;
    const socketOptions = {
      ...commonSocketOptions({
        linger: opts.linger ?? 500,
        maxMessageSize: PUB_INBOUND_MAX,
        heartbeat: opts.heartbeat,
      }),
      ...curveServerOptions(opts.curve, opts.zapDomain),
      sendHighWaterMark: opts.sendHighWaterMark ?? 10_000,
      // A PUB never blocks (it drops at the high-water mark), so waiting is never needed; and with a zero
      // timeout zeromq.js skips its ZMQ_EVENTS check before each send, a poll() syscall per message.
      sendTimeout: 0,
    };
    const socket = opts.xpub
      ? new zmq.XPublisher({ ...socketOptions, verbosity: "allSubsUnsubs" })
      : new zmq.Publisher(socketOptions);
    try {
      this.watchPeers(socket);
      await bindRetryingEagain(socket, opts.endpoint);
    } catch (err) {
      socket.close();
      const e = translateZmqError(err, "bind", opts.endpoint, this.what());
      noteError(this.state, e);
      this.state.state = "down";
      throw e;
    }
    if (this.closed) {
      socket.close();
      throw new ClosedError(this.what());
    }
    this.socket = socket;
    this.bound = socket.lastEndpoint ?? opts.endpoint;
    this.streamId = `${opts.brokerName ?? hostname()}/${opts.name}/${randomTag()}`;
    this.seq = 0;
    this.state.state = "up";
    if (socket instanceof zmq.XPublisher) void this.readSubscriptions(socket);
  }

  private watchPeers(socket: zmq.Publisher | zmq.XPublisher): void {
    const events = retryInterrupted(() => socket.events);
    events.on("accept", (e) => {
      bump(this.state, "accepted");
      this.tracker.peer({ type: "accept", address: e.address, at: Date.now() });
    });
    events.on("disconnect", (e) => {
      bump(this.state, "disconnected");
      this.tracker.peer({ type: "disconnect", address: e.address, at: Date.now() });
    });
    events.on("handshake:error:auth", () => bump(this.state, "authFailures"));
    events.on("handshake:error:protocol", () => bump(this.state, "handshakeErrors"));
  }

  /** Drain the XPUB's subscription messages: first byte 1 = subscribe, 0 = unsubscribe, then the prefix. */
  private async readSubscriptions(socket: zmq.XPublisher): Promise<void> {
    try {
      for await (const frames of socket) {
        const f = frames[0];
        if (f === undefined || f.length === 0 || (f[0] !== 0 && f[0] !== 1)) continue;
        const subscribe = f[0] === 1;
        bump(this.state, subscribe ? "subscribes" : "unsubscribes");
        this.tracker.subscription({ subscribe, prefix: f.subarray(1).toString("utf8"), at: Date.now() });
      }
    } catch (err) {
      if (this.closed || socket.closed) return;
      noteError(this.state, err);
      this.log.warn("XPUB subscription reader stopped", { sink: this.name, error: String(err) });
    }
  }

  async send(batch: readonly Message[]): Promise<void> {
    if (this.closed) throw new ClosedError(this.what());
    if (batch.length === 0) return;
    await this.open();
    if (this.jobs.length >= (this.opts.maxQueuedBatches ?? 64))
      throw new TransportError(
        "TRANSPORT",
        `${this.what()}: ${this.jobs.length} batches already wait for the socket; retry after a short pause`,
        { retryable: true },
      );
    const { frames, sizes } = this.encode(batch);
    await new Promise<void>((resolve, reject) => {
      this.jobs.push({ frames, sizes, resolve, reject });
      void this.pump();
    });
  }

  /**
   * Stamp `seq`/`stream` and encode, all or nothing. A message this socket cannot carry, sent alone, is
   * passed over for good (the dispatcher retries a refused page one message at a time, then skips the
   * one still refused): it uses up its number, so subscribers see the loss as a gap in `seq` (fedmsg's
   * `i`), like a drop at the high-water mark. In a batch of several nothing is used up: the others are
   * sent again.
   */
  private encode(batch: readonly Message[]): { frames: TextFrames[]; sizes: number[] } {
    const limit = this.opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const start = this.seq;
    const frames: TextFrames[] = [];
    const sizes: number[] = [];
    for (const m of batch) {
      const seq = ++this.seq;
      let text: string;
      try {
        text =
          this.opts.format === "legacy"
            ? legacyEnvelopeText(m, seq)
            : stampedEnvelopeText(m, seq, this.streamId);
      } catch (err) {
        this.refused(batch, start, "unencodable");
        throw unencodable(m.id, this.opts.format, err);
      }
      const size = Buffer.byteLength(text, "utf8");
      if (size > limit) {
        this.refused(batch, start, "tooLarge");
        throw rejected("TOO_LARGE", this.tooLargeText(m.id, size, limit, batch.length === 1 ? seq : 0), {
          id: m.id,
          size,
          limit,
        });
      }
      frames.push([m.topic, text]);
      sizes.push(Buffer.byteLength(m.topic, "utf8") + size);
    }
    return { frames, sizes };
  }

  /** A message of `batch` cannot be sent: a lone one keeps its number used up (see encode). */
  private refused(batch: readonly Message[], start: number, counter: string): void {
    bump(this.state, counter);
    if (batch.length > 1) this.seq = start;
    else bump(this.state, "skipped");
  }

  /** `seq`: the number the message used up, 0 when it was in a batch (nothing used up). */
  private tooLargeText(id: string, size: number, limit: number, seq: number): string {
    const counter = this.opts.format === "legacy" ? "i" : "seq";
    const what =
      seq > 0
        ? `not sent on this socket (${counter} ${seq} is used up: its subscribers see a gap)`
        : "the batch was not sent (no sequence number used up)";
    const fix = this.opts.tooLargeHint ?? "make the message smaller, or raise maxMessageBytes";
    return `message ${id} is ${size} bytes on the wire, ${this.what()} sends at most ${limit}: ${what}; ${fix}`;
  }

  private async pump(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      for (let job = this.jobs[0]; job !== undefined; job = this.jobs[0]) {
        await this.write(job);
        this.jobs.shift();
      }
    } finally {
      this.writing = false;
    }
  }

  private async write(job: WriteJob): Promise<void> {
    const socket = this.socket;
    try {
      if (socket === undefined || this.closed) throw new ClosedError(this.what());
      for (let n = 0; n < job.frames.length; n++) {
        // A PUB never blocks: this resolves at once, dropping for subscribers at their high-water mark.
        await socket.send(job.frames[n]!);
        this.state.sent++;
        bump(this.state, "bytes", job.sizes[n]!);
        if ((n + 1) % YIELD_EVERY === 0) await new Promise<void>((r) => setImmediate(r));
      }
      job.resolve();
    } catch (err) {
      const e = translateZmqError(err, "send", this.bound ?? this.opts.endpoint, this.what());
      if (!this.closed) noteError(this.state, e);
      job.reject(e);
    }
  }

  receive(_options: ReceiveOptions): Subscription {
    throw new HeraldError(
      "UNSUPPORTED",
      `${this.what()} only publishes: read it with a ZmqSubscribeTransport connected to ${this.bound ?? this.opts.endpoint}`,
    );
  }

  /** Who is connected (monitor accept/disconnect) and, with `xpub: true`, which prefixes they subscribed. */
  subscribers(): SubscriberInfo {
    return this.tracker.info();
  }

  /** Subscribe/unsubscribe events (xpub only). Returns a function that removes the listener. */
  onSubscription(listener: (e: SubscriptionEvent) => void): () => void {
    return this.tracker.onSubscription(listener);
  }

  /** Connections accepted and lost (monitor events; they carry only the local address). */
  onPeer(listener: (e: PeerEvent) => void): () => void {
    return this.tracker.onPeer(listener);
  }

  /** The subscription events as an async stream (bounded; overflow is counted as `subscriptionEventsDropped`). */
  subscriptionEvents(limit = 10_000): AsyncIterable<SubscriptionEvent> & { close(): void } {
    return this.tracker.stream(limit, () => bump(this.state, "subscriptionEventsDropped"));
  }

  health(): TransportHealth {
    const h = structuredClone(this.state);
    h.counters["subscribers"] = this.tracker.info().connected;
    return h;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.state.state = "closed";
    // The job being written rejects on its own (the socket is closed under it); the waiting ones here.
    for (const job of this.jobs.splice(this.writing ? 1 : 0)) job.reject(new ClosedError(this.what()));
    await this.opening?.catch(() => {});
    this.socket?.close();
    this.tracker.close();
  }

  private what(): string {
    return `ZeroMQ ${this.opts.format} publisher '${this.name}'`;
  }
}
