import { MessageRejectedError } from "../errors.js";
import { ZmqPublishTransport } from "../transport/zeromq-pub.js";
import { backoffDelay, sleep } from "../util/backoff.js";
import type { Logger } from "../util/log.js";
import type { Message } from "../wire/message.js";
import { bindAddress } from "./services.js";

export interface PortState {
  endpoint: string;
  bound: boolean;
  boundSince?: number;
  /** True for the one port this service's messages are published on. */
  serving: boolean;
  connected: number;
  lastSeenAt?: number;
  prefixes: string[];
  lastError?: string;
}

export interface BridgedOptions {
  service: string;
  /** The service's endpoints on this host, in configuration order. */
  endpoints: string[];
  brokerName: string;
  log: Logger;
  sendHighWaterMark?: number;
  /** After the first bind, wait this long (or for a first subscription) before sending held messages. */
  settleMs?: number;
  /** Messages held while no port is bound yet; beyond it the oldest are dropped and counted. */
  maxHeld?: number;
  /** Called with the outbox seqs of held messages dropped (too many held): `herald trace` says so. */
  onDropped?: (seqs: number[], why: string) => void;
  /** Called once per endpoint when it is bound (the shim then stops ingesting from it). */
  onBound?: (endpoint: string) => Promise<void> | void;
  /**
   * Sockets already bound on some endpoints (a restore from the watch after retirement, watch.ts): served
   * as they are, so an old subscriber that stayed connected through the watch receives again at once.
   */
  adopt?: ReadonlyMap<string, ZmqPublishTransport>;
}

/**
 * The socket of one of a legacy service's old ports, as the bridged service serves it and the watch after
 * retirement keeps it (watch.ts): an XPUB, so that who subscribes there is seen, in fedmsg framing.
 */
export function legacyPortSocket(
  name: string,
  endpoint: string,
  brokerName: string,
  sendHighWaterMark: number,
): ZmqPublishTransport {
  return new ZmqPublishTransport({
    name,
    endpoint: bindAddress(endpoint),
    format: "legacy",
    xpub: true,
    brokerName,
    sendHighWaterMark,
    linger: 0,
  });
}

/** A bound socket handed over by detach(). */
export interface DetachedPort {
  t: ZmqPublishTransport;
  /** Until then what happens on the port may be the shim's own ingest socket leaving (endSelfWindow). */
  selfUntil: number;
}

/** A message for the service, with its outbox seq when it came from the broker's outbox (in-broker shim). */
export interface Routed {
  message: Message;
  seq?: number;
}

interface Port {
  endpoint: string;
  t: ZmqPublishTransport | undefined;
  boundSince?: number;
  /** Until when what happens on the port is the shim's own ingest socket (see endSelfWindow); open: Infinity. */
  selfUntil?: number;
  lastError?: string;
}

/** The longest the shim's own ingest socket is assumed to take to leave a port just bound. */
const SELF_WINDOW_MS = 2000;
/** How late the socket monitor's events may arrive after the fact, on this host. */
const SELF_EVENTS_MS = 200;

/**
 * A bridged service: the app moved to herald, so the shim binds the app's old per-thread ports on this
 * host and publishes that service's herald traffic there in fedmsg framing. Each message goes out on
 * exactly one port (the first one bound, kept for the life of this port set): old subscribers connect to every
 * endpoint of the list, so one port reaches each of them once. Binding retries with backoff while the
 * old app still holds a port; messages arriving meanwhile are held (bounded) and sent once bound.
 */
export class BridgedService {
  private readonly ports: Port[];
  private held: Routed[] = [];
  private ready = false;
  private stopped = false;
  private readonly abort = new AbortController();
  private chain: Promise<void> = Promise.resolve();
  private readonly recent = new Set<string>();
  /** Chosen once, at the first bind, and kept: switching ports would send to a port old subscribers may not have rejoined yet. */
  private serving: Port | undefined;
  sent = 0;
  droppedHeld = 0;
  sendErrors = 0;

  constructor(private readonly opts: BridgedOptions) {
    this.ports = opts.endpoints.map((endpoint) => ({ endpoint, t: undefined }));
    for (const p of this.ports) {
      const t = opts.adopt?.get(p.endpoint);
      if (t) this.adopted(p, t);
      else void this.bindLoop(p);
    }
  }

  /**
   * A socket bound by someone else in this shim (the retired service's watch). No self window: the shim
   * does not ingest a retired service's ports, so whoever is connected is an old subscriber.
   */
  private adopted(p: Port, t: ZmqPublishTransport): void {
    p.t = t;
    p.boundSince = Date.now();
    p.selfUntil = 0;
    this.serving ??= p;
    this.opts.log.info("legacy port serving herald traffic in fedmsg format again", {
      service: this.opts.service,
      endpoint: p.endpoint,
    });
    if (!this.ready && this.serving === p) void this.settle(t);
  }

  get endpoints(): string[] {
    return this.opts.endpoints;
  }

  private async bindLoop(p: Port): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      const t = legacyPortSocket(
        `shim-${this.opts.service}`,
        p.endpoint,
        this.opts.brokerName,
        this.opts.sendHighWaterMark ?? 10_000,
      );
      try {
        await t.open();
      } catch (err) {
        p.lastError = (err as Error).message;
        if (attempt % 10 === 0)
          this.opts.log.warn("cannot bind a legacy port yet (is the old app still running?); retrying", {
            service: this.opts.service,
            endpoint: p.endpoint,
            err: p.lastError,
          });
        await sleep(backoffDelay(attempt, 200, 3000), this.abort.signal);
        continue;
      }
      if (this.stopped) {
        await t.close();
        return;
      }
      p.t = t;
      p.boundSince = Date.now();
      p.selfUntil = Number.POSITIVE_INFINITY;
      this.serving ??= p;
      delete p.lastError;
      this.opts.log.info("legacy port bound: serving herald traffic in fedmsg format", {
        service: this.opts.service,
        endpoint: p.endpoint,
      });
      await this.opts.onBound?.(p.endpoint);
      void this.endSelfWindow(p, t);
      // Only the serving port's own subscribers decide when held messages may go out on it.
      if (!this.ready && this.serving === p) void this.settle(t);
      return;
    }
  }

  /**
   * The shim's ingest socket read this endpoint until onBound and may have connected to the port in that
   * moment; it leaves right after. Until it has left (nobody connected, or SELF_WINDOW_MS), the port's
   * connections are not evidence of an old subscriber: counted, they made every bridged service look
   * used just after its bind, and a subscriber seen since the bridge blocks retiring for good.
   */
  private async endSelfWindow(p: Port, t: ZmqPublishTransport): Promise<void> {
    const start = Date.now();
    // Monitor events arrive a moment late: an accept not read yet must not look like "nobody connected".
    const settled = (): boolean => Date.now() - start >= SELF_EVENTS_MS && t.subscribers().connected === 0;
    while (!this.stopped && !settled() && Date.now() - start < SELF_WINDOW_MS)
      await sleep(10, this.abort.signal);
    p.selfUntil = Date.now();
  }

  /** Give old subscribers a moment to reconnect (ZeroMQ's slow joiner) before sending held messages. */
  private async settle(t: ZmqPublishTransport): Promise<void> {
    const settleMs = this.opts.settleMs ?? 1000;
    const deadline = Date.now() + settleMs;
    // The shim's own ingest socket, reading this endpoint until a moment ago (onBound), connects to the port
    // as soon as it is ours and subscribes; its disconnect arrives a moment after. Counting it sent the held
    // messages before any old subscriber was back (1 run in 6 of test/shim-restart.test.ts).
    await sleep(Math.min(50, settleMs), this.abort.signal);
    while (Date.now() < deadline && !this.stopped && t.subscribers().prefixes.length === 0)
      await sleep(20, this.abort.signal);
    if (this.stopped || this.ready) return;
    this.ready = true;
    const held = this.held;
    this.held = [];
    this.send(held.map((h) => h.message));
  }

  /** Report dropped held messages that came from the outbox (they have a seq). */
  private noteDropped(dropped: readonly Routed[], why: string): void {
    const seqs = dropped.flatMap((r) => (r.seq === undefined ? [] : [r.seq]));
    if (seqs.length > 0) this.opts.onDropped?.(seqs, why);
  }

  /** Held messages given up with the service (its stage changed, or it left the config): never sent. */
  giveUpHeld(why: string): void {
    this.noteDropped(this.held, why);
  }

  /** True while the message at outbox `seq` is held for a port not bound yet (`herald trace`). */
  holds(seq: number): boolean {
    return this.held.some((h) => h.seq === seq);
  }

  /** The outbox seq of the oldest message held for a port not bound yet; undefined when none is held. */
  heldFrom(): number | undefined {
    for (const h of this.held) if (h.seq !== undefined) return h.seq;
    return undefined;
  }

  /** Messages that belong to this service, in broker order. */
  publish(messages: readonly Routed[]): void {
    const fresh = messages.filter((r) => this.remember(r.message.id));
    if (fresh.length === 0 || this.stopped) return;
    if (!this.ready) {
      this.held.push(...fresh);
      const over = this.held.length - (this.opts.maxHeld ?? 100_000);
      if (over > 0) {
        const dropped = this.held.splice(0, over);
        this.noteDropped(dropped, "dropped: too many messages held for its legacy port not bound yet");
        if (
          this.droppedHeld === 0 ||
          Math.floor((this.droppedHeld + over) / 1000) > Math.floor(this.droppedHeld / 1000)
        )
          this.opts.log.error("too many messages held for a legacy port not bound yet: dropping the oldest", {
            service: this.opts.service,
            dropped: this.droppedHeld + over,
          });
        this.droppedHeld += over;
      }
      return;
    }
    this.send(fresh.map((r) => r.message));
  }

  /** The broker may hand a batch over twice (sink retry, crash rewind): serve each id once per run. */
  private remember(id: string): boolean {
    if (this.recent.has(id)) return false;
    this.recent.add(id);
    if (this.recent.size > 50_000) {
      const oldest = this.recent.values().next().value;
      if (oldest !== undefined) this.recent.delete(oldest);
    }
    return true;
  }

  private send(batch: Message[]): void {
    if (batch.length === 0) return;
    this.chain = this.chain.then(async () => {
      const port = this.serving;
      if (!port?.t || this.stopped) return;
      await this.deliver(port.t, port.endpoint, batch);
    });
  }

  /** A message the port refuses for good (MessageRejectedError) costs only itself, not its batch. */
  private async deliver(t: ZmqPublishTransport, endpoint: string, batch: Message[]): Promise<void> {
    try {
      await t.send(batch);
      this.sent += batch.length;
    } catch (err) {
      if (err instanceof MessageRejectedError && batch.length > 1) {
        for (const m of batch) await this.deliver(t, endpoint, [m]);
        return;
      }
      this.sendErrors += batch.length;
      this.opts.log.warn("could not publish on a legacy port", {
        service: this.opts.service,
        endpoint,
        messages: batch.length,
        err: (err as Error).message,
      });
    }
  }

  /** Wait until everything handed over so far has been written to the socket. */
  async flushed(): Promise<void> {
    await this.chain;
  }

  portStates(): PortState[] {
    const serving = this.serving;
    return this.ports.map((p) => {
      const info = p.t?.subscribers() ?? { connected: 0, prefixes: [] };
      const self = p.selfUntil === Number.POSITIVE_INFINITY; // see endSelfWindow
      const s: PortState = {
        endpoint: p.endpoint,
        bound: p.t !== undefined,
        serving: p === serving,
        connected: self ? 0 : info.connected,
        prefixes: self ? [] : info.prefixes,
      };
      if (p.boundSince !== undefined) s.boundSince = p.boundSince;
      if (info.lastSeenAt !== undefined && info.lastSeenAt > (p.selfUntil ?? 0))
        s.lastSeenAt = info.lastSeenAt;
      if (p.lastError !== undefined) s.lastError = p.lastError;
      return s;
    });
  }

  async close(): Promise<void> {
    if (!(await this.halt())) return;
    await Promise.all(this.ports.map((p) => p.t?.close()));
    for (const p of this.ports) p.t = undefined;
    this.serving = undefined;
  }

  /**
   * Stop serving and hand the bound sockets over instead of closing them (a retire with the watch on,
   * watch.ts): whoever connects later finds the port still there, and is seen.
   */
  async detach(): Promise<Map<string, DetachedPort>> {
    const out = new Map<string, DetachedPort>();
    // Read before halt(): stopping ends endSelfWindow's wait early, whether the ingest socket left or not.
    const open = this.ports.filter((p) => p.selfUntil === Number.POSITIVE_INFINITY);
    if (!(await this.halt())) return out;
    for (const p of this.ports) {
      if (!p.t) continue;
      const selfUntil = open.includes(p) ? (p.boundSince ?? Date.now()) + SELF_WINDOW_MS : (p.selfUntil ?? 0);
      out.set(p.endpoint, { t: p.t, selfUntil });
    }
    for (const p of this.ports) p.t = undefined;
    this.serving = undefined;
    return out;
  }

  /** Stop sending and binding; false when already stopped. */
  private async halt(): Promise<boolean> {
    if (this.stopped) return false;
    await this.chain;
    this.stopped = true;
    this.abort.abort();
    // From the broker's outbox (seq known) they are routed again after a restart; from a PUB feed they are lost.
    if (this.held.some((h) => h.seq === undefined))
      this.opts.log.warn("closing a legacy port set with messages never sent (no port was ever bound)", {
        service: this.opts.service,
        held: this.held.length,
      });
    else if (this.held.length > 0)
      this.opts.log.info(
        "closing a legacy port set before any port was bound: held messages go out next run",
        {
          service: this.opts.service,
          held: this.held.length,
        },
      );
    return true;
  }
}
