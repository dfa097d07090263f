import type { ZmqPublishTransport } from "../transport/zeromq-pub.js";
import type { Logger } from "../util/log.js";
import { type DetachedPort, legacyPortSocket, type PortState } from "./bridged.js";
import { KeptPrefixes, prefixText } from "./prefixes.js";

/** What happened on a watched port: every kind moves lastSeenAt; accepts count as stragglers. */
export interface WatchEvent {
  endpoint: string;
  kind: "accept" | "disconnect" | "subscribe" | "unsubscribe";
  /** The topic prefix of a (un)subscription. */
  prefix?: string;
  at: number;
}

export interface WatchOptions {
  service: string;
  /** The service's endpoints on this host, in configuration order. */
  endpoints: string[];
  /** Sockets the bridged service had bound (a retire in this run): kept, not bound again. */
  adopt?: ReadonlyMap<string, DetachedPort>;
  brokerName: string;
  /** broker.sendHighWaterMark, as the bridged service binds with: a restore serves on these sockets. */
  sendHighWaterMark: number;
  log: Logger;
  /** Called for every connection and (un)subscription on a watched port (the evidence keeps them). */
  onEvent: (e: WatchEvent) => void;
}

interface WatchedPort {
  endpoint: string;
  t: ZmqPublishTransport | undefined;
  boundSince?: number;
  /** Events up to then are the shim's own ingest socket (DetachedPort.selfUntil), not a straggler. */
  selfUntil: number;
  lastError?: string;
  /** Removes this watch's listeners from the socket (before it is handed back or closed). */
  off: Array<() => void>;
  /** Prefixes subscribed on this port during the watch (this run), for the log line: the newest ones. */
  seen: KeptPrefixes;
  lastLogAt: number;
  logTimer?: NodeJS.Timeout;
}

/** One warning per port per minute: a subscriber that reconnects in a loop must not flood the log. */
const LOG_EVERY_MS = 60_000;
/** A connect is followed by its subscriptions within milliseconds: wait that long so the line names them. */
const LOG_DELAY_MS = 300;

/**
 * A retired service's old ports, kept bound for `legacy.watchRetired` after the retirement: an XPUB that
 * sends nothing, whose connections and subscriptions are recorded and logged. A subscriber that was away
 * during the whole evidence window (a weekly job, a host that was down) would otherwise connect to a
 * closed port and retry silently forever; here it is seen, and the log says what to do.
 */
export class WatchedPorts {
  private readonly ports: WatchedPort[];
  private closed = false;

  constructor(private readonly opts: WatchOptions) {
    this.ports = opts.endpoints.map((endpoint) => ({
      endpoint,
      t: undefined,
      selfUntil: 0,
      off: [],
      seen: new KeptPrefixes(),
      lastLogAt: 0,
    }));
  }

  /** Take over the adopted sockets and bind the others once each (see bindOnce). */
  async start(): Promise<void> {
    for (const p of this.ports) {
      const d = this.opts.adopt?.get(p.endpoint);
      if (d) {
        p.selfUntil = d.selfUntil;
        this.watch(p, d.t);
      } else await this.bindOnce(p);
    }
  }

  /**
   * After a restart the ports are bound again, once: a port someone else holds (the old app started again,
   * another program) is theirs. Logged at info and left alone; retrying would fight them for it.
   */
  private async bindOnce(p: WatchedPort): Promise<void> {
    const t = legacyPortSocket(
      `shim-watch-${this.opts.service}`,
      p.endpoint,
      this.opts.brokerName,
      this.opts.sendHighWaterMark,
    );
    try {
      await t.open();
    } catch (err) {
      p.lastError = (err as Error).message;
      await t.close();
      this.opts.log.info("cannot watch a retired service's old port (something else holds it): not retried", {
        service: this.opts.service,
        endpoint: p.endpoint,
        err: p.lastError,
      });
      return;
    }
    if (this.closed) {
      await t.close();
      return;
    }
    this.watch(p, t);
  }

  private watch(p: WatchedPort, t: ZmqPublishTransport): void {
    p.t = t;
    p.boundSince = Date.now();
    delete p.lastError;
    const event = (kind: WatchEvent["kind"], at: number, prefix?: string): void => {
      if (at <= p.selfUntil) return;
      this.opts.onEvent({ endpoint: p.endpoint, kind, at, ...(prefix === undefined ? {} : { prefix }) });
      if (kind === "subscribe" && prefix !== undefined) p.seen.add(prefix);
      if (kind === "accept" || kind === "subscribe") this.due(p);
    };
    p.off.push(
      t.onPeer((e) => event(e.type, e.at)),
      t.onSubscription((e) => event(e.subscribe ? "subscribe" : "unsubscribe", e.at, e.prefix)),
    );
    this.opts.log.info(
      "watching a retired service's old port: it serves nothing, old subscribers are logged",
      {
        service: this.opts.service,
        endpoint: p.endpoint,
      },
    );
  }

  /** Schedule the port's warning: shortly after the first sign of a straggler, then at most once a minute. */
  private due(p: WatchedPort): void {
    if (p.logTimer !== undefined || this.closed) return;
    const wait = Math.max(LOG_DELAY_MS, p.lastLogAt + LOG_EVERY_MS - Date.now());
    p.logTimer = setTimeout(() => {
      delete p.logTimer;
      p.lastLogAt = Date.now();
      this.warn(p);
    }, wait);
    p.logTimer.unref();
  }

  private warn(p: WatchedPort): void {
    const info = p.t?.subscribers() ?? { connected: 0, prefixes: [] };
    // A few, shortened: a subscriber may send any number of any length.
    const prefixes =
      info.prefixes.length > 0 ? prefixText(info.prefixes) : prefixText(p.seen.sorted(), p.seen.more);
    const service = this.opts.service;
    this.opts.log.warn(
      `an old subscriber uses retired service ${service}'s port ${p.endpoint} (prefixes ${prefixes || "none yet"}): it gets nothing: move it to herald (docs/migration.md) or run \`herald cutover restore ${service}\``,
      { service, endpoint: p.endpoint, connected: info.connected, prefixes: prefixes || "none" },
    );
  }

  portStates(): PortState[] {
    return this.ports.map((p) => {
      const info = p.t?.subscribers() ?? { connected: 0, prefixes: [] };
      const self = Date.now() <= p.selfUntil;
      const s: PortState = {
        endpoint: p.endpoint,
        bound: p.t !== undefined,
        serving: false,
        connected: self ? 0 : info.connected,
        prefixes: self ? [] : info.prefixes,
      };
      if (p.boundSince !== undefined) s.boundSince = p.boundSince;
      if (info.lastSeenAt !== undefined && info.lastSeenAt > p.selfUntil) s.lastSeenAt = info.lastSeenAt;
      if (p.lastError !== undefined) s.lastError = p.lastError;
      return s;
    });
  }

  /** Stop watching and give the bound sockets to the caller (a restore serves on them again). */
  handOver(): Map<string, ZmqPublishTransport> {
    return this.release();
  }

  async close(): Promise<void> {
    await Promise.all([...this.release().values()].map((t) => t.close()));
  }

  /** Listeners and timers off; the bound sockets, by endpoint, for the caller to keep or close. */
  private release(): Map<string, ZmqPublishTransport> {
    const out = new Map<string, ZmqPublishTransport>();
    if (this.closed) return out;
    this.closed = true;
    for (const p of this.ports) {
      for (const off of p.off.splice(0)) off();
      if (p.logTimer !== undefined) clearTimeout(p.logTimer);
      if (p.t) out.set(p.endpoint, p.t);
      p.t = undefined;
    }
    return out;
  }
}
