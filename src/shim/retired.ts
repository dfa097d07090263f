import type { LegacyStage } from "../config/schema.js";
import { formatDuration } from "../config/units.js";
import type { ZmqPublishTransport } from "../transport/zeromq-pub.js";
import type { Logger } from "../util/log.js";
import type { DetachedPort, PortState } from "./bridged.js";
import { isLocalEndpoint, type ShimService } from "./services.js";
import type { History } from "./snapshot.js";
import { WatchedPorts } from "./watch.js";

export interface RetiredOptions {
  history: History;
  log: Logger;
  localHosts: readonly string[];
  brokerName: () => string;
  /** legacy.watchRetired as configured now (a reload may change it). */
  watchMs: () => number;
  /** broker.sendHighWaterMark: a port bound for watching is served with it after a restore. */
  sendHighWaterMark: () => number;
}

/**
 * The watch after retirement (legacy.watchRetired), per retired service: which services' old ports stay
 * bound (serving nothing), when that ends, and handing the sockets back on a restore. The watch starts
 * only when the shim retires a service it had bridged (its ports were the shim's): a service set from
 * legacy to retired in the file may have an old app that wants its ports back. After a restart it goes
 * on while the evidence has the watch and stageSince + watchRetired is still ahead.
 */
export class RetiredWatches {
  private readonly watched = new Map<string, WatchedPorts>();

  constructor(private readonly o: RetiredOptions) {}

  get ports(): ReadonlyMap<string, WatchedPorts> {
    return this.watched;
  }

  /** Is the service's watch on now (started, and not over)? */
  private due(name: string, now = Date.now()): boolean {
    const watchMs = this.o.watchMs();
    return watchMs > 0 && this.o.history.hasWatch(name) && now < this.o.history.stageSince(name) + watchMs;
  }

  /**
   * The service is retired (just now when `before` is another stage). Returns true when its ports are
   * watched; `detach` hands over the sockets a bridged service still has, so nobody sees them close.
   */
  async retire(
    svc: ShimService,
    before: LegacyStage | undefined,
    detach: () => Promise<Map<string, DetachedPort>>,
  ): Promise<boolean> {
    const local = svc.endpoints.filter((ep) => isLocalEndpoint(ep, this.o.localHosts));
    if (before === "bridged" && local.length > 0 && this.o.watchMs() > 0) this.o.history.startWatch(svc.name);
    if (!this.due(svc.name)) {
      await this.close(svc.name);
      return false;
    }
    if (this.watched.has(svc.name)) return true;
    const adopt = await detach();
    for (const [ep, d] of adopt) if (!local.includes(ep)) await d.t.close();
    const w = new WatchedPorts({
      service: svc.name,
      endpoints: local,
      adopt,
      brokerName: this.o.brokerName(),
      sendHighWaterMark: this.o.sendHighWaterMark(),
      log: this.o.log,
      onEvent: (e) => this.o.history.watchEvent(svc.name, e),
    });
    this.watched.set(svc.name, w);
    await w.start();
    return true;
  }

  /** A restore: stop watching and give the bound sockets to the bridged service that serves them again. */
  take(name: string): Map<string, ZmqPublishTransport> {
    const w = this.watched.get(name);
    if (!w) return new Map();
    this.o.history.recordPorts(name, w.portStates(), Date.now());
    this.watched.delete(name);
    return w.handOver();
  }

  async close(name: string): Promise<void> {
    const w = this.watched.get(name);
    if (!w) return;
    this.o.history.recordPorts(name, w.portStates(), Date.now());
    this.watched.delete(name);
    await w.close();
  }

  /** Close the ports of watches that are over; true when any closed. */
  async expire(): Promise<boolean> {
    let any = false;
    for (const name of [...this.watched.keys()]) {
      if (this.due(name)) continue;
      const states: PortState[] = this.watched.get(name)?.portStates() ?? [];
      const connectedNow = states.reduce((n, p) => n + p.connected, 0);
      // A straggler still connected at the end was warned about already; the close cuts it off: say so.
      const level = connectedNow > 0 ? "warn" : "info";
      this.o.log[level]("the watch after retirement is over: closing the service's old ports", {
        service: name,
        watched: formatDuration(this.o.watchMs()),
        connectedNow,
      });
      await this.close(name);
      any = true;
    }
    return any;
  }

  async closeAll(): Promise<void> {
    for (const name of [...this.watched.keys()]) await this.close(name);
  }
}
