import type { HoldNote } from "../broker/dispatcher.js";
import { publishLimit } from "../broker/from-config.js";
import type { HeraldClient } from "../client/publisher.js";
import { subscriberCurve } from "../client/security.js";
import type { HeraldConfig, LegacyStage } from "../config/schema.js";
import { loadLegacyConfig } from "../legacy/config/load.js";
import type { LegacyConfig } from "../legacy/config/types.js";
import type { Logger } from "../util/log.js";
import { BridgedService, type DetachedPort, type Routed } from "./bridged.js";
import { EvidenceWriter, evidencePath, readEvidence } from "./evidence.js";
import { ownerOf, PubFeed, ShimSink } from "./feed.js";
import { Ingest } from "./ingest.js";
import { prefixText } from "./prefixes.js";
import { RetiredWatches } from "./retired.js";
import {
  defaultLocalHosts,
  isLocalEndpoint,
  resolvePlan,
  type ShimPlan,
  type ShimService,
} from "./services.js";
import { heraldPub, mtime, realpathOr, shimIdentity, standaloneClient } from "./setup.js";
import { History, type Pending, snapshot } from "./snapshot.js";
import type { ShimHandle, ShimOptions, ShimStatus } from "./types.js";

/** Dropped messages remembered for `herald trace` (each drop is also logged). */
const DROPS_KEPT = 1000;
const GAVE_UP = (stage: LegacyStage) =>
  `dropped: the service moved to stage ${stage} before its legacy port was bound`;

/**
 * Start the migration shim: ingest `legacy` services, serve `bridged` services' old ports, close
 * `retired` ones; record who still listens. Runs inside `herald serve` (opts.feed = "sink": add
 * `handle.sink` to the broker's sinks) or alone (`herald shim`, feed = "subscribe": reads the herald PUB).
 */
export async function startShim(
  config: HeraldConfig,
  log: Logger,
  opts: ShimOptions = {},
): Promise<ShimHandle> {
  const shim = new Shim(config, log, opts);
  await shim.start();
  return shim;
}

class Shim implements ShimHandle {
  readonly sink: ShimSink;
  private plan: ShimPlan | undefined;
  private readonly ingest: Ingest;
  /** Its own connection to the broker, unless the caller gave a submitter (ShimOptions.submitter). */
  private readonly client: HeraldClient | undefined;
  private readonly bridged = new Map<string, BridgedService>();
  /** Retired services' old ports, kept bound without serving for legacy.watchRetired. */
  private readonly watches: RetiredWatches;
  private readonly history: History;
  /** Stages the configuration asks for that the shim holds back (a retire while subscribers are connected). */
  private readonly pending = new Map<string, Pending>();
  /** Outbox seqs of messages a bridged service dropped unsent, and why (the last DROPS_KEPT). */
  private readonly dropped = new Map<number, string>();
  /** The config file reloads read, as `herald cutover` must find it to edit the right one. */
  private readonly configFile: string | undefined;
  private readonly writer: EvidenceWriter;
  private feed: PubFeed | undefined;
  private poll: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private lastMtime = 0;
  private applying: Promise<void> = Promise.resolve();
  /** Set when stop() begins: a reload queued behind it must not bind anything (watched ports) again. */
  private stopping: Promise<void> | undefined;
  private readonly localHosts: string[];

  constructor(
    private config: HeraldConfig,
    private readonly log: Logger,
    private readonly opts: ShimOptions,
  ) {
    this.localHosts = opts.localHosts ?? defaultLocalHosts(config);
    this.client = opts.submitter ? undefined : standaloneClient(config, opts.submitEndpoint);
    this.ingest = new Ingest({
      submitter: opts.submitter ?? this.client!,
      brokerName: config.broker.name,
      log: log.child("ingest"),
      maxBatch: config.broker.submit.maxBatch,
      // What the broker sends on its legacy socket, it takes in: ensure_ascii makes a body up to 3x larger.
      maxMessageBytes: publishLimit(config, "legacy"),
      localHosts: this.localHosts,
      ...shimIdentity(config, this.log),
    });
    const path = opts.evidencePath ?? evidencePath(config.paths.dataDir);
    this.history = new History(readEvidence(path));
    for (const [name, at] of this.history.ingestSeen()) this.ingest.seedLastSeen(name, at);
    this.sink = new ShimSink(
      {
        route: (batch, served) => this.route(batch, served),
        heldFrom: () => this.heldFrom(),
        holdNote: (seq) => this.holdNote(seq),
      },
      { maxPin: Math.min(100_000, Math.floor(config.outbox.maxMessages / 4)), log: log.child("sink") },
    );
    this.watches = new RetiredWatches({
      history: this.history,
      log: log.child("retired"),
      localHosts: this.localHosts,
      brokerName: () => this.config.broker.name,
      watchMs: () => this.config.legacy.watchRetired,
      sendHighWaterMark: () => this.config.broker.sendHighWaterMark,
    });
    this.configFile = opts.watch ? realpathOr(opts.watch.file) : undefined;
    this.writer = new EvidenceWriter(path, () => this.status(), undefined, log.child("evidence"));
  }

  async start(): Promise<void> {
    await this.apply(this.config, this.opts.legacyConfig);
    if ((this.opts.feed ?? "subscribe") === "subscribe") {
      const herald = this.opts.heraldEndpoint ?? heraldPub(this.config);
      if (herald === undefined) this.log.warn("no herald PUB socket configured: bridged ports stay silent");
      else
        this.feed = new PubFeed(herald, (batch) => this.route(batch), subscriberCurve(this.config, herald));
    }
    this.writer.start();
    this.watch();
    // A watch after retirement ends within a second of its end (stageSince + legacy.watchRetired).
    this.expiry = setInterval(() => {
      void this.serialized(async () => {
        if (await this.watches.expire()) this.writer.flush();
      });
    }, 1000);
    this.expiry.unref();
  }

  /**
   * Herald traffic from the broker: hand each message to the bridged service it belongs to, except what
   * `served` says went out before a restart.
   */
  private route(batch: readonly Routed[], served?: (owner: string, seq: number) => boolean): void {
    const plan = this.plan;
    if (!plan || this.bridged.size === 0) return;
    const names = new Set(this.bridged.keys());
    const byOwner = new Map<string, Routed[]>();
    for (const r of batch) {
      const owner = ownerOf(r.message, plan, names);
      if (owner === undefined) continue;
      if (served && r.seq !== undefined && served(owner, r.seq)) continue;
      const list = byOwner.get(owner) ?? [];
      list.push(r);
      byOwner.set(owner, list);
    }
    for (const [owner, msgs] of byOwner) this.bridged.get(owner)?.publish(msgs);
  }

  private heldFrom(): Map<string, number> {
    const held = new Map<string, number>();
    for (const [name, b] of this.bridged) {
      const from = b.heldFrom();
      if (from !== undefined) held.set(name, from);
    }
    return held;
  }

  /** Held for a bridged service, or dropped by one (the last DROPS_KEPT), for `herald trace`. */
  private holdNote(seq: number): HoldNote | undefined {
    for (const [name, b] of this.bridged)
      if (b.holds(seq))
        return { state: "held", detail: `held for ${name}: its legacy port is not bound yet` };
    const why = this.dropped.get(seq);
    return why === undefined ? undefined : { state: "passed-over", detail: why };
  }

  private noteDropped(service: string, seqs: readonly number[], why: string): void {
    // A flood drops up to maxHeld at once: only the newest DROPS_KEPT can be kept, so only those are added.
    for (const seq of seqs.slice(-DROPS_KEPT)) this.dropped.set(seq, `${service}: ${why}`);
    for (const seq of this.dropped.keys()) {
      if (this.dropped.size <= DROPS_KEPT) break;
      this.dropped.delete(seq);
    }
  }

  reload(config: HeraldConfig): Promise<void> {
    return this.serialized(() => this.apply(config, undefined));
  }

  /** One change of sockets at a time: reloads and the end of watches. */
  private serialized(fn: () => Promise<void>): Promise<void> {
    const run = this.applying.then(() => (this.stopping !== undefined ? undefined : fn()));
    this.applying = run.catch(() => {});
    return run;
  }

  private async apply(config: HeraldConfig, preloaded: LegacyConfig | undefined): Promise<void> {
    if (this.stopping !== undefined) return;
    const legacy =
      preloaded ??
      (config.legacy.config
        ? await loadLegacyConfig(config.legacy.config, this.opts.legacyLoad ?? {})
        : undefined);
    for (const w of legacy?.warnings ?? []) this.log.warn("legacy config", { warning: w });
    const next = resolvePlan(config, legacy);
    const prev = this.plan;
    this.config = config;
    for (const [name, old] of prev?.services ?? []) {
      const now = next.services.get(name);
      if (!now || now.endpoints.join(" ") !== old.endpoints.join(" ")) await this.teardown(old);
    }
    // The plan keeps the stage in effect, so a stage held back is tried again at the next reload.
    const held: ShimService[] = [];
    for (const svc of next.services.values()) {
      const stage = await this.applyService(svc, prev?.services.get(svc.name));
      if (stage !== svc.stage) held.push({ ...svc, stage });
    }
    for (const svc of held) next.services.set(svc.name, svc);
    this.plan = next;
    // Both idempotent: a bind still retrying goes on, a changed topic scheme applies at once.
    if (next.relayInbound === undefined) await this.ingest.unbindRelay();
    else void this.ingest.bindRelay(next.relayInbound, next);
    this.writer.flush();
  }

  /** Apply one service's configured stage; returns the stage in effect (bridged while a retire is held). */
  private async applyService(svc: ShimService, old: ShimService | undefined): Promise<LegacyStage> {
    const stage = this.holdRetire(svc) ? "bridged" : svc.stage;
    const before = this.history.stageOf(svc.name);
    if (old?.stage !== stage) {
      this.history.stageChanged(svc.name, stage);
      this.log.info("legacy service stage", { service: svc.name, from: old?.stage ?? "(new)", to: stage });
    }
    const defaults = { host: svc.host || "legacy", app: svc.module };
    if (stage === "legacy") {
      await this.watches.close(svc.name); // the old app wants its ports back: now
      await this.closeBridged(svc.name, GAVE_UP("legacy"));
      for (const ep of svc.endpoints) this.ingest.read(svc.name, ep, defaults);
      return stage;
    }
    if (stage === "retired") {
      const detach = () => this.closeBridged(svc.name, GAVE_UP("retired"), true);
      if (!(await this.watches.retire(svc, before, detach)))
        await this.closeBridged(svc.name, GAVE_UP("retired"));
      for (const ep of svc.endpoints) await this.ingest.unread(ep);
      return stage;
    }
    await this.applyBridged(svc, old, defaults);
    return stage;
  }

  /**
   * Retiring closes the ports: not while a subscriber is connected to one. `herald cutover` decided on
   * evidence up to a second old and someone may have connected since; closing would cut them off unseen.
   * The retire is held (logged, `pending` in the evidence) and tried again at the next reload.
   */
  private holdRetire(svc: ShimService): boolean {
    const ports = svc.stage === "retired" ? (this.bridged.get(svc.name)?.portStates() ?? []) : [];
    const busy = ports.filter((p) => p.connected > 0);
    if (busy.length === 0) {
      this.pending.delete(svc.name);
      return false;
    }
    const who = busy
      .map((p) => {
        const prefixes = prefixText(p.prefixes) || "none yet";
        return `${p.endpoint}: ${p.connected} subscriber(s) connected (prefixes ${prefixes})`;
      })
      .join("; ");
    const reason = `${who}; its ports stay open`;
    this.pending.set(svc.name, { stage: "retired", since: Date.now(), reason });
    this.log.warn("not retiring a service while subscribers are connected: its ports stay open", {
      service: svc.name,
      subscribers: who,
    });
    return true;
  }

  private async applyBridged(
    svc: ShimService,
    old: ShimService | undefined,
    defaults: { host: string; app: string },
  ): Promise<void> {
    // bridged: keep ingesting a local port until we hold it (the old app may still be publishing there).
    const local = svc.endpoints.filter((ep) => isLocalEndpoint(ep, this.localHosts));
    for (const ep of svc.endpoints) if (!local.includes(ep)) await this.ingest.unread(ep);
    if (this.bridged.has(svc.name)) return;
    if (local.length === 0) {
      this.log.warn("bridged service has no endpoint on this host: the shim on its host serves it", {
        service: svc.name,
        endpoints: svc.endpoints.join(","),
      });
      return;
    }
    if (old?.stage !== "retired") for (const ep of local) this.ingest.read(svc.name, ep, defaults);
    const adopt = this.watches.take(svc.name); // a restore during the watch: the same sockets serve again
    this.bridged.set(
      svc.name,
      new BridgedService({
        service: svc.name,
        endpoints: local,
        brokerName: this.config.broker.name,
        log: this.log.child("bridged"),
        sendHighWaterMark: this.config.broker.sendHighWaterMark,
        settleMs: this.opts.settleMs ?? this.config.legacy.settle,
        onBound: (ep) => this.ingest.unread(ep),
        onDropped: (seqs, why) => this.noteDropped(svc.name, seqs, why),
        adopt,
      }),
    );
  }

  /** Close a bridged service's ports, or with `detach` return its bound sockets (for the watch). */
  private async closeBridged(
    name: string,
    giveUp?: string,
    detach = false,
  ): Promise<Map<string, DetachedPort>> {
    const b = this.bridged.get(name);
    if (!b) return new Map();
    if (giveUp !== undefined) b.giveUpHeld(giveUp);
    this.history.recordPorts(name, b.portStates(), Date.now());
    this.bridged.delete(name);
    if (detach) return await b.detach();
    await b.close();
    return new Map();
  }

  private async teardown(svc: ShimService): Promise<void> {
    this.pending.delete(svc.name);
    await this.watches.close(svc.name);
    await this.closeBridged(
      svc.name,
      "dropped: the service left the configuration, or its endpoints changed, before its legacy port was bound",
    );
    for (const ep of svc.endpoints) await this.ingest.unread(ep);
  }

  /** Poll the config file's mtime (SIGHUP does the same at once). */
  private watch(): void {
    const w = this.opts.watch;
    if (!w) return;
    this.lastMtime = mtime(w.file);
    this.poll = setInterval(() => {
      const m = mtime(w.file);
      if (m === this.lastMtime) return;
      this.lastMtime = m;
      this.log.info("config file changed: reloading the shim", { file: w.file });
      let next: HeraldConfig;
      try {
        next = w.load();
      } catch (err) {
        this.log.error("config reload failed; keeping the running stages", { err: (err as Error).message });
        return;
      }
      void this.reload(next).catch((err: unknown) =>
        this.log.error("applying the reloaded config failed", { err: (err as Error).message }),
      );
    }, w.intervalMs ?? 1000);
    this.poll.unref();
  }

  status(): ShimStatus {
    return snapshot({
      broker: this.config.broker.name,
      plan: this.plan,
      bridged: this.bridged,
      watched: this.watches.ports,
      watchRetiredMs: this.config.legacy.watchRetired,
      ingest: this.ingest,
      history: this.history,
      pending: this.pending,
      configFile: this.configFile,
    });
  }

  /** Wait until every message routed so far has been written to its legacy port (tests, shutdown). */
  async flushed(): Promise<void> {
    await Promise.all([...this.bridged.values()].map((b) => b.flushed()));
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopNow();
    return this.stopping;
  }

  private async stopNow(): Promise<void> {
    if (this.expiry) clearInterval(this.expiry);
    await this.applying;
    if (this.poll) clearInterval(this.poll);
    await this.feed?.close();
    // Before the services close: the sink's last checkpoint keeps what they still hold for the next run.
    this.sink.freeze();
    for (const name of [...this.bridged.keys()]) await this.closeBridged(name);
    await this.watches.closeAll();
    await this.ingest.close();
    this.writer.stop();
    await this.sink.close();
    await this.client?.close();
  }
}
