import * as zmq from "zeromq";
import { decodeFrames } from "../transport/zeromq-decode.js";
import { backoffDelay, sleep } from "../util/backoff.js";
import type { Logger } from "../util/log.js";
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
  /** Largest envelope frame ingested; larger ones are counted and skipped, the connection kept. */
  maxMessageBytes: number;
  /** Hosts that mean "this machine": relay_inbound on another host is that host's shim's to bind. */
  localHosts: readonly string[];
  onMessage(message: Message): void;
  onMalformed(): void;
  /** Aborted when the whole ingest closes. */
  closed: AbortSignal;
}

/** One wish to bind relay_inbound: pending while it retries, bound once `socket` is set. */
interface Attempt {
  endpoint: string;
  abort: AbortController;
  socket?: zmq.Subscriber;
}

/**
 * libzmq's own cap only guards memory: a peer over it is dropped (a protocol error, nothing logged), so
 * the real limit is checked per message instead. Publishers connect to relay_inbound and reconnect on
 * their own after such a drop.
 */
export const MEMORY_GUARD_FACTOR = 32;

/**
 * The bound SUB socket of relay_inbound, where active publishers (fedmsg-logger, scripts) connect.
 * Binding retries while another process (an old fedmsg-relay) holds the port; a new bind or unbind
 * cancels the attempt in progress, so at most one retry loop runs and a removed endpoint is never bound.
 */
export class RelayInbound {
  private current: Attempt | undefined;
  private scheme: TopicScheme | undefined;

  constructor(private readonly opts: RelayOptions) {}

  /** The endpoint bound now: not while retrying, nor when it is on another host. */
  get boundEndpoint(): string | undefined {
    return this.current?.socket ? this.current.endpoint : undefined;
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
        maxMessageSize: this.opts.maxMessageBytes * MEMORY_GUARD_FACTOR,
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

  /** A publisher dropped by the memory guard reconnects by itself; the drop is still worth a trace. */
  private watch(socket: zmq.Subscriber, endpoint: string): void {
    const events = retryInterrupted(() => socket.events);
    events.on("disconnect", (e) => {
      if (!socket.closed) this.opts.log.debug("relay_inbound: a publisher disconnected", { endpoint, ...e });
    });
  }

  private async read(socket: zmq.Subscriber): Promise<void> {
    try {
      for await (const frames of socket) this.handle(frames);
    } catch (err) {
      if (!socket.closed) this.opts.log.error("relay_inbound reader stopped", { err: String(err) });
    }
  }

  private handle(frames: Buffer[]): void {
    const problem = this.tooLarge(frames);
    const d =
      problem === undefined
        ? decodeFrames(frames, "legacy", {
            maxBytes: this.opts.maxMessageBytes,
            legacyDefaults: { host: "relay", app: legacyApp(frames[0]?.toString("utf8") ?? "", this.scheme) },
          })
        : { problem };
    if ("problem" in d) {
      this.opts.onMalformed();
      this.opts.log.warn("malformed message on relay_inbound skipped", { problem: d.problem });
      return;
    }
    this.opts.onMessage(d.message);
  }

  private tooLarge(frames: Buffer[]): string | undefined {
    const size = frames[1]?.length ?? 0;
    if (size <= this.opts.maxMessageBytes) return undefined;
    return `envelope of ${size} bytes is over the limit of ${this.opts.maxMessageBytes} bytes`;
  }
}
