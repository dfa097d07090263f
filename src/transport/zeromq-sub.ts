import { setImmediate as nextTurn } from "node:timers/promises";
import * as zmq from "zeromq";
import { ClosedError, HeraldError } from "../errors.js";
import { AsyncQueue } from "../util/queue.js";
import { retryInterrupted } from "../util/zeromq.js";
import type { Message } from "../wire/message.js";
import { compilePatterns, type TopicPattern } from "../wire/topic.js";
import {
  bump,
  type Delivery,
  initialHealth,
  noteError,
  type ReceiveOptions,
  type Subscription,
  type Transport,
  type TransportHealth,
} from "./types.js";
import {
  type CurveClientOptions,
  commonSocketOptions,
  curveClientOptions,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_RECONNECT_INTERVAL,
  DEFAULT_RECONNECT_MAX_INTERVAL,
  type HeartbeatOptions,
  stderrLogger,
  type TransportLogger,
  translateZmqError,
} from "./zeromq-common.js";
import { decodeFrames, type FrameFormat } from "./zeromq-decode.js";

/** How long a "disconnect" may go without libzmq's "connect:retry" before it counts as dropped for good. */
const DROP_CHECK_MS = 1000;

export interface ZmqSubscribeOptions {
  name: string;
  /** PUB endpoints to connect to (all of them). Unreachable ones are retried forever by libzmq. */
  endpoints: readonly string[];
  format: FrameFormat;
  curve?: CurveClientOptions | undefined;
  /** Largest envelope frame accepted. Default 4 MiB. */
  maxMessageBytes?: number;
  /**
   * libzmq's cap (ZMQ_MAXMSGSIZE), default `maxMessageBytes`. A larger cap (a memory guard) lets an
   * envelope between the two be counted as malformed and skipped instead of dropping the connection.
   */
  socketMaxMessageBytes?: number;
  /** ms before the first reconnect attempt. Default 100. */
  reconnectInterval?: number;
  /** Upper bound of the exponential reconnect backoff, ms. Default 1000, as in fedmsg; keep it under the broker's `publishDelay`. */
  reconnectMaxInterval?: number;
  heartbeat?: HeartbeatOptions | false;
  /** Messages libzmq queues per connection before the publisher starts dropping for us. Default 10000. */
  receiveHighWaterMark?: number;
  /** Deliveries buffered per subscription before the readers stop reading (then libzmq's queue fills). Default 1000. */
  bufferSize?: number;
  /**
   * Return to the event loop once this many bytes were read since the last time (default: never). A
   * received Buffer is freed only from there, and zeromq.js hands over what libzmq already holds without
   * returning: a burst of large envelopes stayed in memory whole (the shim's legacy ingest). Counted in
   * bytes, so that small messages still flow at full speed (a yield per message cut ingest to a sixth).
   */
  yieldEveryBytes?: number;
  /** What fedmsg envelopes do not carry (origin host/app), by endpoint; e.g. from the legacy service name. */
  legacyDefaults?: (endpoint: string) => { host?: string; app?: string };
  /**
   * Endpoints whose fedmsg `i` is the publishing socket's own counter (a fedmsg app's port, a bridged
   * port herald serves): `i` becomes the delivery's `seq`, so the Subscriber reports gaps and restarts.
   * Not herald's legacy gateway nor fedmsg-relay, which pass on the `i` each message came with.
   */
  legacySequence?: (endpoint: string) => boolean;
  /** Default 0: a SUB socket has nothing worth waiting for at close. */
  linger?: number;
  /** Malformed-frame warnings go here. Default: stderr, sampled after the first 10. */
  logger?: TransportLogger;
}

/**
 * Reads herald or fedmsg frames from one or more bound PUB sockets.
 *
 * One SUB socket per endpoint (not one socket connected to all): zeromq.js does not say which connection
 * a message came from, and the migration shim needs exactly that: `Delivery.via` names the endpoint, so a
 * legacy message can be attributed to its fedmsg service and gaps in `i`/`seq` can be tracked per publisher.
 * ZeroMQ filters by byte prefix only, so each socket subscribes to `TopicPattern.prefixOf()` and every
 * message is matched exactly afterwards. Malformed frames are counted (`counters.malformed`), logged and
 * skipped; they never end the iteration.
 */
export class ZmqSubscribeTransport implements Transport {
  readonly kind = "zeromq";
  readonly name: string;
  private readonly opts: ZmqSubscribeOptions;
  private readonly log: TransportLogger;
  private readonly state: TransportHealth = initialHealth();
  private readonly subs = new Set<ZmqSubscription>();
  private closed = false;
  private connected = 0;

  constructor(opts: ZmqSubscribeOptions) {
    this.opts = opts;
    this.name = opts.name;
    this.log = opts.logger ?? stderrLogger(`zeromq-sub ${opts.name}`);
  }

  /** The PUB endpoints this transport connects to. */
  get endpoints(): readonly string[] {
    return this.opts.endpoints;
  }

  async open(): Promise<void> {
    if (this.closed) throw new ClosedError(this.what());
    if (this.state.state === "starting") this.state.state = "up";
  }

  async send(_batch: readonly Message[]): Promise<void> {
    throw new HeraldError(
      "UNSUPPORTED",
      `${this.what()} only receives: publish with a ZmqPublishTransport bound to one of ${this.opts.endpoints.join(", ")}`,
    );
  }

  receive(options: ReceiveOptions): Subscription {
    if (this.closed) throw new ClosedError(this.what());
    if (this.state.state === "starting") this.state.state = "up";
    const sub = new ZmqSubscription(
      this,
      compilePatterns(options.patterns),
      this.opts.bufferSize ?? 1000,
      this.opts.yieldEveryBytes,
    );
    this.subs.add(sub);
    try {
      for (const endpoint of this.opts.endpoints) sub.attach(endpoint, this.makeSocket(sub, endpoint));
    } catch (err) {
      void sub.close();
      throw err;
    }
    return sub;
  }

  private makeSocket(sub: ZmqSubscription, endpoint: string): zmq.Subscriber {
    const o = this.opts;
    const socket = new zmq.Subscriber({
      ...commonSocketOptions({
        linger: o.linger ?? 0,
        maxMessageSize: o.socketMaxMessageBytes ?? o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
        heartbeat: o.heartbeat,
      }),
      ...curveClientOptions(o.curve),
      reconnectInterval: o.reconnectInterval ?? DEFAULT_RECONNECT_INTERVAL,
      reconnectMaxInterval: o.reconnectMaxInterval ?? DEFAULT_RECONNECT_MAX_INTERVAL,
      receiveHighWaterMark: o.receiveHighWaterMark ?? 10_000,
    });
    try {
      this.watch(socket, sub, endpoint);
      for (const prefix of sub.prefixes()) retryInterrupted(() => socket.subscribe(prefix));
      retryInterrupted(() => socket.connect(endpoint));
    } catch (err) {
      socket.close();
      throw translateZmqError(err, "connect", endpoint, this.what());
    }
    return socket;
  }

  /** Count connects, disconnects and retries; a refused CURVE handshake gets a new socket later. */
  private watch(socket: zmq.Subscriber, sub: ZmqSubscription, endpoint: string): void {
    const o = this.opts;
    const events = retryInterrupted(() => socket.events);
    events.on("connect", () => {
      this.connected++;
      bump(this.state, "connects");
    });
    events.on("disconnect", () => {
      this.connected = Math.max(0, this.connected - 1);
      bump(this.state, "disconnects");
    });
    events.on("connect:retry", () => bump(this.state, "reconnects"));
    this.watchDrops(events, socket, sub, endpoint);
    events.on("handshake:error:auth", () => {
      bump(this.state, "authFailures");
      // libzmq never retries a session the server's ZAP handler refused: try again on a new socket, so a
      // key trusted later (trust dir reload) gets in without restarting anything.
      const base = o.reconnectInterval ?? DEFAULT_RECONNECT_INTERVAL;
      const cap = o.reconnectMaxInterval ?? DEFAULT_RECONNECT_MAX_INTERVAL;
      sub.replaceLater(endpoint, socket, () => this.makeSocket(sub, endpoint), base, cap);
    });
  }

  /**
   * libzmq reconnects after a lost connection (a "connect:retry" follows the "disconnect" at once) but
   * never after a protocol error such as a message over ZMQ_MAXMSGSIZE: then the endpoint would stay
   * silent for good. Such a drop is logged, counted and repaired with a new socket.
   */
  private watchDrops(
    events: zmq.Observer,
    socket: zmq.Subscriber,
    sub: ZmqSubscription,
    endpoint: string,
  ): void {
    let timer: NodeJS.Timeout | undefined;
    // Only a connection that got through its handshake: refused handshakes have their own handling.
    let up = false;
    let waiting = false;
    events.on("handshake", () => {
      up = true;
    });
    const settled = (): void => {
      waiting = false;
    };
    events.on("connect:retry", settled);
    events.on("connect", settled);
    events.on("disconnect", () => {
      if (!up) return;
      up = false;
      waiting = true;
      clearTimeout(timer);
      // Then setImmediate: events already queued (a retry read late on a busy loop) are seen first.
      timer = setTimeout(
        () => setImmediate(() => waiting && this.dropped(socket, sub, endpoint)),
        DROP_CHECK_MS,
      );
      timer.unref();
    });
  }

  private dropped(socket: zmq.Subscriber, sub: ZmqSubscription, endpoint: string): void {
    if (socket.closed || this.closed) return;
    bump(this.state, "dropped");
    this.log.warn("ZeroMQ connection dropped and not retried (a message over the size cap?); reconnecting", {
      transport: this.name,
      via: endpoint,
      cap: this.opts.socketMaxMessageBytes ?? this.opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    });
    sub.replaceLater(endpoint, socket, () => this.makeSocket(sub, endpoint), 0, 0);
  }

  /** @internal called by a subscription's reader for every multipart message. */
  handle(sub: ZmqSubscription, frames: Buffer[], endpoint: string): void {
    const o = this.opts;
    const limit = o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const size = frames[1]?.length ?? 0;
    const decoded =
      size > limit
        ? { problem: `envelope of ${size} bytes is over the limit of ${limit} bytes` }
        : decodeFrames(frames, o.format, {
            maxBytes: limit,
            legacyDefaults: o.legacyDefaults?.(endpoint) ?? {},
          });
    if ("problem" in decoded) {
      bump(this.state, "malformed");
      this.log.warn("skipping a malformed ZeroMQ message", {
        transport: this.name,
        via: endpoint,
        problem: decoded.problem,
      });
      return;
    }
    if (!sub.matches(decoded.message.topic)) {
      bump(this.state, "filtered");
      return;
    }
    this.state.received++;
    if (decoded.format === "legacy" && decoded.i !== undefined && o.legacySequence?.(endpoint))
      decoded.message.seq = decoded.i;
    sub.push({
      message: decoded.message,
      via: endpoint,
      format: decoded.format,
      raw: decoded.raw,
      ack: async () => {},
      nack: async () => {},
    });
  }

  /** @internal */
  readerFailed(endpoint: string, err: unknown): void {
    const e = translateZmqError(err, "receive", endpoint, this.what());
    noteError(this.state, e);
    this.log.warn("ZeroMQ reader stopped", { transport: this.name, via: endpoint, error: e.message });
  }

  /** @internal */
  forget(sub: ZmqSubscription): void {
    this.subs.delete(sub);
  }

  health(): TransportHealth {
    const h = structuredClone(this.state);
    h.counters["connected"] = this.connected;
    if (!this.closed && this.subs.size > 0)
      h.state = this.connected > 0 ? "up" : (h.counters["reconnects"] ?? 0) > 0 ? "down" : "starting";
    return h;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.state.state = "closed";
    await Promise.all([...this.subs].map((s) => s.close()));
  }

  private what(): string {
    return `ZeroMQ ${this.opts.format} subscriber '${this.name}'`;
  }
}

/** One receive() call: a SUB socket per endpoint, one reader loop each, one bounded delivery queue. */
class ZmqSubscription implements Subscription {
  private readonly queue = new AsyncQueue<Delivery>();
  private readonly sockets: zmq.Subscriber[] = [];
  private readonly spaceWaiters: (() => void)[] = [];
  private readonly refusals = new Map<string, number>();
  private stopped = false;

  constructor(
    private readonly owner: ZmqSubscribeTransport,
    private readonly patterns: readonly TopicPattern[],
    private readonly limit: number,
    private readonly yieldEveryBytes = Number.POSITIVE_INFINITY,
  ) {}

  prefixes(): string[] {
    const all = new Set(this.patterns.map((p) => p.prefixOf()));
    return all.has("") ? [""] : [...all];
  }

  matches(topic: string): boolean {
    return this.patterns.some((p) => p.matches(topic));
  }

  attach(endpoint: string, socket: zmq.Subscriber): void {
    this.sockets.push(socket);
    void this.read(endpoint, socket);
  }

  /** Replace a socket whose CURVE handshake was refused, after a backoff that grows per endpoint. */
  replaceLater(
    endpoint: string,
    old: zmq.Subscriber,
    make: () => zmq.Subscriber,
    base: number,
    cap: number,
  ): void {
    const n = this.refusals.get(endpoint) ?? 0;
    this.refusals.set(endpoint, n + 1);
    const timer = setTimeout(
      () => {
        const i = this.sockets.indexOf(old);
        if (this.stopped || i < 0) return;
        old.close();
        const fresh = make();
        this.sockets[i] = fresh;
        void this.read(endpoint, fresh);
      },
      Math.min(cap, base * 2 ** Math.min(n, 16)),
    );
    timer.unref();
  }

  private async read(endpoint: string, socket: zmq.Subscriber): Promise<void> {
    let sinceYield = 0;
    while (!this.stopped) {
      // Backpressure: stop reading while the consumer is behind; libzmq's own queue then fills and
      // the publisher drops for this subscriber alone (it is never blocked by us).
      if (this.queue.size >= this.limit) await new Promise<void>((r) => this.spaceWaiters.push(r));
      if (this.stopped) return;
      let frames: Buffer[];
      try {
        frames = await socket.receive();
      } catch (err) {
        if (!this.stopped && !socket.closed) this.owner.readerFailed(endpoint, err);
        return;
      }
      this.owner.handle(this, frames, endpoint);
      for (const f of frames) sinceYield += f.length;
      if (sinceYield >= this.yieldEveryBytes) {
        sinceYield = 0;
        await nextTurn();
      }
    }
  }

  push(d: Delivery): void {
    this.queue.push(d);
  }

  private wake(): void {
    while (this.queue.size < this.limit && this.spaceWaiters.length > 0) this.spaceWaiters.shift()?.();
  }

  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const s of this.sockets) s.close();
    for (const w of this.spaceWaiters.splice(0)) w();
    this.queue.close();
    this.owner.forget(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<Delivery> {
    return {
      next: async () => {
        const r = await this.queue.next();
        this.wake();
        return r;
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
