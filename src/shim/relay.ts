import { setImmediate as nextTurn } from "node:timers/promises";
import * as zmq from "zeromq";
import { decodeFrames } from "../transport/zeromq-decode.js";
import { backoffDelay, sleep } from "../util/backoff.js";
import { type Logger, rateLimitedLogger, refusalLogger } from "../util/log.js";
import { retryInterrupted } from "../util/zeromq.js";
import { legacyApp } from "../wire/legacy.js";
import type { Message } from "../wire/message.js";
import { isLocalEndpoint } from "./services.js";

/** The fedmsg topic scheme `<topicPrefix>.<environment>.<app>.…` (from the shim's plan). */
export interface TopicScheme {
  topicPrefix: string;
  environment: string;
}

export interface RelayOptions {
  log: Logger;
  /** Largest frame ingested (the envelope is the large one): libzmq drops a peer that sends a larger one. */
  maxMessageBytes: number;
  /** Hosts that mean "this machine": relay_inbound on another host is that host's shim's to bind. */
  localHosts: readonly string[];
  /** `bytes`: its envelope's size, which the ingest queue's byte bound counts. */
  onMessage(message: Message, bytes: number): void;
  onMalformed(): void;
  /** A publisher's connection ended: its script finished, or libzmq dropped it for a frame over the limit. */
  onDisconnect(): void;
  /** Aborted when the whole ingest closes. */
  closed: AbortSignal;
  /** The reader returns to the event loop after this many bytes read (default READ_YIELD_BYTES). */
  yieldEveryBytes?: number;
}

/**
 * The shim's readers return to the event loop once they read this many bytes: what a received Buffer holds
 * is freed only from there (zeromq.js hands over what libzmq already queued without returning), and small
 * messages must still be read many to a turn, so that the ingest submits them as one batch (a yield per
 * message made every relay_inbound message its own outbox commit, and lost bursts at the publisher's exit).
 */
export const READ_YIELD_BYTES = 1 << 20;

/** One wish to bind relay_inbound: pending while it retries, bound once `socket` is set. */
interface Attempt {
  endpoint: string;
  abort: AbortController;
  socket?: zmq.Subscriber;
}

/**
 * Messages queued per connection (ZMQ_RCVHWM). relay_inbound takes anonymous connections, so libzmq's
 * limits are the ones that bound memory here (libzmq 4.3.5, which zeromq.js 6 bundles):
 * - ZMQ_MAXMSGSIZE is checked per frame, on its size header, before the frame is read: a frame over it
 *   ends the connection. It is the envelope limit itself, so an envelope over the limit never reaches
 *   JavaScript; the topic frame is checked on its own, against the same limit.
 * - ZMQ_RCVHWM counts whole messages per connection. A full queue stops libzmq reading that connection
 *   (TCP backpressure), it drops nothing: the rest waits in the publisher's own queue.
 * So a connection holds at most this many messages of two frames within the limit, plus the frame being
 * decoded (docs/security.md has the figure, and what libzmq leaves unbounded: the number of connections,
 * the frames of one message). A few are plenty: the reader takes each message at once and only queues it
 * for the broker.
 */
export const RELAY_RECEIVE_HWM = 4;

/** Lines of "a publisher's connection ended" a minute: each fedmsg-logger run ends one. */
const DISCONNECT_LOG_BURST = 1;

/**
 * The bound SUB socket of relay_inbound, where active publishers (fedmsg-logger, scripts) connect.
 * Binding retries while another process (an old fedmsg-relay) holds the port; a new bind or unbind
 * cancels the attempt in progress, so at most one retry loop runs and a removed endpoint is never bound.
 */
export class RelayInbound {
  private current: Attempt | undefined;
  private scheme: TopicScheme | undefined;
  /** Anyone may connect and send: what they cause must not flood the log. */
  private readonly refusalLog: Logger;
  private readonly disconnectLog: Logger;

  constructor(private readonly opts: RelayOptions) {
    this.refusalLog = refusalLogger(opts.log);
    this.disconnectLog = rateLimitedLogger(opts.log, { burst: DISCONNECT_LOG_BURST });
  }

  /** The endpoint bound now: not while retrying, nor when it is on another host. */
  get boundEndpoint(): string | undefined {
    return this.current?.socket ? this.current.endpoint : undefined;
  }

  /** libzmq's limits on the bound socket (undefined while not bound), read back from libzmq. */
  get socketLimits(): { maxMessageSize: number; receiveHighWaterMark: number } | undefined {
    const s = this.current?.socket;
    return s && { maxMessageSize: s.maxMessageSize, receiveHighWaterMark: s.receiveHighWaterMark };
  }

  /** Bind `endpoint` (idempotent: a reload asking for the same one changes nothing but the scheme). */
  async bind(endpoint: string, scheme?: TopicScheme): Promise<void> {
    if (scheme) this.scheme = scheme;
    if (this.current?.endpoint === endpoint) return;
    this.unbind();
    const attempt: Attempt = { endpoint, abort: new AbortController() };
    this.current = attempt;
    if (!isLocalEndpoint(endpoint, this.opts.localHosts)) {
      this.opts.log.info("relay_inbound is on another host: the shim there ingests it; not binding", {
        endpoint,
      });
      return;
    }
    await this.retryBind(attempt);
  }

  unbind(): void {
    const a = this.current;
    this.current = undefined;
    if (!a) return;
    a.abort.abort();
    a.socket?.close();
  }

  private async retryBind(a: Attempt): Promise<void> {
    const stop = AbortSignal.any([a.abort.signal, this.opts.closed]);
    for (let n = 0; !stop.aborted; n++) {
      const socket = new zmq.Subscriber({
        linger: 0,
        maxMessageSize: this.opts.maxMessageBytes,
        receiveHighWaterMark: RELAY_RECEIVE_HWM,
      });
      try {
        retryInterrupted(() => socket.subscribe());
        await socket.bind(a.endpoint);
      } catch (err) {
        socket.close();
        if (n % 10 === 0)
          this.opts.log.warn("cannot bind relay_inbound yet (fedmsg-relay still running?); retrying", {
            endpoint: a.endpoint,
            err: (err as Error).message,
          });
        await sleep(backoffDelay(n, 200, 5000), stop);
        continue;
      }
      // Cancelled while bind() was in flight: the port must not stay bound.
      if (stop.aborted) return socket.close();
      a.socket = socket;
      this.opts.log.info("relay_inbound bound: active publishers are ingested", { endpoint: a.endpoint });
      this.watch(socket, a.endpoint);
      void this.read(socket);
      return;
    }
  }

  /**
   * libzmq tells nobody why it dropped a connection: a frame over the limit and a publisher that closed
   * look the same (a disconnect event), so every end is counted and said, at most once a minute.
   */
  private watch(socket: zmq.Subscriber, endpoint: string): void {
    const events = retryInterrupted(() => socket.events);
    events.on("disconnect", () => {
      if (socket.closed) return;
      this.opts.onDisconnect();
      // info, not warn: every finished fedmsg-logger run ends a connection; the counter shows drops.
      this.disconnectLog.info(
        "relay_inbound: a publisher's connection ended (its script finished, or it sent a frame over the limit, which libzmq drops with the connection)",
        { endpoint, limitBytes: this.opts.maxMessageBytes },
      );
    });
  }

  private async read(socket: zmq.Subscriber): Promise<void> {
    try {
      const every = this.opts.yieldEveryBytes ?? READ_YIELD_BYTES;
      let read = 0;
      for await (const frames of socket) {
        this.handle(frames);
        for (const f of frames) read += f.length;
        if (read >= every) {
          read = 0;
          await nextTurn();
        }
      }
    } catch (err) {
      if (!socket.closed) this.opts.log.error("relay_inbound reader stopped", { err: String(err) });
    }
  }

  private handle(frames: Buffer[]): void {
    const d = decodeFrames(frames, "legacy", {
      maxBytes: this.opts.maxMessageBytes,
      legacyDefaults: { host: "relay", app: legacyApp(frames[0]?.toString("utf8") ?? "", this.scheme) },
    });
    if ("problem" in d) {
      this.opts.onMalformed();
      this.refusalLog.warn("malformed message on relay_inbound skipped", { problem: d.problem });
      return;
    }
    this.opts.onMessage(d.message, d.raw.length);
  }
}
