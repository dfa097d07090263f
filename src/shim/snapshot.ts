import type { LegacyStage } from "../config/schema.js";
import type { BridgedService, PortState } from "./bridged.js";
import type { EvidenceFile, PortEvidence, ServiceEvidence, WatchEvidence } from "./evidence.js";
import { type Ingest, RELAY_INBOUND } from "./ingest.js";
import { capPrefixes, KeptPrefixes } from "./prefixes.js";
import type { ShimPlan } from "./services.js";
import type { WatchEvent } from "./watch.js";

interface PortMemory {
  lastSeenAt?: number;
  prefixesSeen: KeptPrefixes;
  /**
   * The live prefixes at the last record: only a prefix new since then is added to prefixesSeen, so a
   * subscriber holding more than it keeps does not push them through it again at every snapshot.
   */
  lastLive?: ReadonlySet<string>;
  /** Watched with nobody connected, summed over runs (see PortEvidence.quietWatchedMs). */
  quietMs: number;
  /**
   * Up to when `quietMs` is counted, in this run only: never carried over a restart, so the time the shim
   * was down is not added to it.
   */
  countedTo?: number;
}

/** Old subscribers seen on a retired service's watched ports (ServiceEvidence.watch), kept over runs. */
interface WatchMemory {
  stragglers: number;
  lastSeenAt?: number;
  prefixes: KeptPrefixes;
}

/** A stage the configuration asks for and the shim held back (ServiceEvidence.pending). */
export interface Pending {
  stage: LegacyStage;
  since: number;
  reason: string;
}

/**
 * What outlives a port or a process: last seen times, prefixes ever seen, how long each port was watched
 * quietly, when each stage began.
 */
export class History {
  private readonly ports = new Map<string, Map<string, PortMemory>>();
  private readonly stages = new Map<string, { stage: LegacyStage; since: number }>();
  private readonly ingest = new Map<string, number>();
  private readonly watches = new Map<string, WatchMemory>();

  constructor(prev: EvidenceFile | undefined) {
    for (const [name, s] of Object.entries(prev?.services ?? {})) {
      const since = Date.parse(s.stageSince);
      const known = Number.isFinite(since) && since > 0;
      this.stages.set(name, { stage: s.stage, since: known ? since : Date.now() });
      if (s.ingest.lastSeenAt) this.ingest.set(name, Date.parse(s.ingest.lastSeenAt));
      // A watch runs from stageSince: with that unknown it would start over at every restart, so it is over.
      if (s.watch && s.stage === "retired" && known) {
        const w: WatchMemory = {
          stragglers: Math.max(0, s.watch.stragglers || 0),
          prefixes: new KeptPrefixes(s.watch.prefixes ?? [], s.watch.prefixesMore ?? 0),
        };
        const seen = s.watch.lastSeenAt ? Date.parse(s.watch.lastSeenAt) : Number.NaN;
        if (!Number.isNaN(seen)) w.lastSeenAt = seen;
        this.watches.set(name, w);
      }
      const m = new Map<string, PortMemory>();
      for (const p of Object.values(s.ports)) {
        const mem: PortMemory = {
          prefixesSeen: new KeptPrefixes(p.prefixesSeen ?? [], p.prefixesSeenMore ?? 0),
          quietMs: Math.max(0, p.quietWatchedMs ?? 0),
        };
        if (p.lastSeenAt) mem.lastSeenAt = Date.parse(p.lastSeenAt);
        m.set(p.endpoint, mem);
      }
      this.ports.set(name, m);
    }
  }

  ingestSeen(): Map<string, number> {
    return this.ingest;
  }

  /**
   * A new stage starts a new watch: quiet time from an earlier bridged period proves nothing now, and the
   * stragglers of an earlier retirement are not this one's.
   */
  stageChanged(name: string, stage: LegacyStage): void {
    const known = this.stages.get(name);
    if (known?.stage === stage) return;
    this.stages.set(name, { stage, since: Date.now() });
    this.watches.delete(name);
    for (const mem of this.ports.get(name)?.values() ?? []) {
      mem.quietMs = 0;
      delete mem.countedTo;
    }
  }

  /** The stage in effect as last recorded (this run, or the evidence of the previous one). */
  stageOf(name: string): LegacyStage | undefined {
    return this.stages.get(name)?.stage;
  }

  /** The service was retired from bridged just now: its old ports are watched (legacy.watchRetired). */
  startWatch(name: string): void {
    this.watches.set(name, { stragglers: 0, prefixes: new KeptPrefixes() });
  }

  hasWatch(name: string): boolean {
    return this.watches.has(name);
  }

  /** A connection or (un)subscription on a watched port. */
  watchEvent(name: string, e: WatchEvent): void {
    const w = this.watches.get(name);
    if (!w) return;
    if (e.kind === "accept") w.stragglers++;
    if (e.kind === "subscribe" && e.prefix !== undefined) w.prefixes.add(e.prefix);
    if (w.lastSeenAt === undefined || e.at > w.lastSeenAt) w.lastSeenAt = e.at;
  }

  stageSince(name: string): number {
    return this.stages.get(name)?.since ?? Date.now();
  }

  private memory(name: string, endpoint: string): PortMemory {
    let m = this.ports.get(name);
    if (!m) {
      m = new Map();
      this.ports.set(name, m);
    }
    let p = m.get(endpoint);
    if (!p) {
      p = { prefixesSeen: new KeptPrefixes(), quietMs: 0 };
      m.set(endpoint, p);
    }
    return p;
  }

  /** Fold live port states in: someone connected now was seen now. */
  recordPorts(name: string, states: PortState[], now: number): void {
    for (const s of states) {
      const mem = this.memory(name, s.endpoint);
      const seen = s.connected > 0 ? now : s.lastSeenAt;
      if (seen !== undefined && (mem.lastSeenAt === undefined || seen > mem.lastSeenAt))
        mem.lastSeenAt = seen;
      for (const p of s.prefixes) if (!mem.lastLive?.has(p)) mem.prefixesSeen.add(p);
      mem.lastLive = new Set(s.prefixes);
      countQuiet(mem, s, seen, now);
    }
  }

  remembered(name: string): Map<string, PortMemory> {
    return this.ports.get(name) ?? new Map();
  }

  /** The watch record for the evidence; `watchMs` is legacy.watchRetired now (a reload may change it). */
  watchEvidence(name: string, watchMs: number, live: PortState[], now: number): WatchEvidence | undefined {
    const w = this.watches.get(name);
    if (!w) return undefined;
    if (live.some((p) => p.connected > 0)) w.lastSeenAt = now; // still there: seen now
    return {
      until: iso(this.stageSince(name) + watchMs)!,
      stragglers: w.stragglers,
      ...(w.lastSeenAt !== undefined ? { lastSeenAt: iso(w.lastSeenAt)! } : {}),
      prefixes: w.prefixes.sorted(),
      ...(w.prefixes.more > 0 ? { prefixesMore: w.prefixes.more } : {}),
    };
  }
}

/**
 * Add the span since the last count (or since the port was bound in this run) to the port's quiet time;
 * a subscriber seen in that span restarts it from when it was last seen.
 */
function countQuiet(mem: PortMemory, s: PortState, seen: number | undefined, now: number): void {
  if (!s.bound || s.boundSince === undefined) {
    delete mem.countedTo;
    return;
  }
  const from = Math.max(s.boundSince, mem.countedTo ?? s.boundSince);
  if (seen !== undefined && seen >= from) mem.quietMs = Math.max(0, now - seen);
  else mem.quietMs += Math.max(0, now - from);
  mem.countedTo = now;
}

const iso = (ms: number | undefined): string | undefined =>
  ms === undefined ? undefined : new Date(ms).toISOString();

export function snapshot(s: {
  broker: string;
  plan: ShimPlan | undefined;
  bridged: Map<string, BridgedService>;
  /** Retired services' ports kept bound for the watch, by service. */
  watched?: ReadonlyMap<string, { portStates(): PortState[] }>;
  /** legacy.watchRetired. */
  watchRetiredMs?: number;
  ingest: Ingest;
  history: History;
  /** Stages held back, by service. */
  pending?: ReadonlyMap<string, Pending>;
  configFile?: string | undefined;
}): EvidenceFile {
  const now = Date.now();
  const services: Record<string, ServiceEvidence> = {};
  for (const svc of s.plan?.services.values() ?? []) {
    const b = s.bridged.get(svc.name);
    const live = b?.portStates() ?? s.watched?.get(svc.name)?.portStates() ?? [];
    s.history.recordPorts(svc.name, live, now);
    const ports: Record<string, PortEvidence> = {};
    for (const [endpoint, mem] of s.history.remembered(svc.name)) {
      const st = live.find((p) => p.endpoint === endpoint);
      ports[endpoint] = portEvidence(endpoint, st, mem);
    }
    for (const st of live)
      ports[st.endpoint] ??= portEvidence(st.endpoint, st, { prefixesSeen: new KeptPrefixes(), quietMs: 0 });
    const c = s.ingest.counters(svc.name);
    const ev: ServiceEvidence = {
      stage: svc.stage,
      stageSince: new Date(s.history.stageSince(svc.name)).toISOString(),
      endpoints: svc.endpoints,
      ingest: {
        ingested: c.ingested,
        duplicates: c.duplicates,
        malformed: c.malformed,
        rejected: c.rejected,
        dropped: c.dropped,
        ...(c.lastSeenAt !== undefined ? { lastSeenAt: iso(c.lastSeenAt)! } : {}),
      },
      ports,
    };
    if (b) ev.served = b.sent;
    const held = s.pending?.get(svc.name);
    if (held) ev.pending = { stage: held.stage, since: iso(held.since)!, reason: held.reason };
    const watch =
      svc.stage === "retired"
        ? s.history.watchEvidence(svc.name, s.watchRetiredMs ?? 0, live, now)
        : undefined;
    if (watch) ev.watch = watch;
    services[svc.name] = ev;
  }
  const out: EvidenceFile = {
    version: 1,
    broker: s.broker,
    pid: process.pid,
    ...(s.configFile !== undefined ? { configFile: s.configFile } : {}),
    updatedAt: iso(now)!,
    services,
  };
  const relay = s.plan?.relayInbound;
  if (relay !== undefined) {
    const c = s.ingest.counters(RELAY_INBOUND);
    out.relayInbound = {
      endpoint: relay,
      bound: s.ingest.relayEndpoint === relay,
      ingested: c.ingested,
      malformed: c.malformed,
      disconnects: c.disconnects ?? 0,
      ...(c.lastSeenAt !== undefined ? { lastSeenAt: iso(c.lastSeenAt)! } : {}),
    };
  }
  return out;
}

/** The live prefixes are in `mem.prefixesSeen` already (recordPorts). */
function portEvidence(endpoint: string, st: PortState | undefined, mem: PortMemory): PortEvidence {
  const live = capPrefixes(st?.prefixes ?? []);
  const p: PortEvidence = {
    endpoint,
    bound: st?.bound ?? false,
    serving: st?.serving ?? false,
    connected: st?.connected ?? 0,
    prefixes: live.prefixes,
    prefixesSeen: mem.prefixesSeen.sorted(),
    quietWatchedMs: mem.quietMs,
  };
  if (live.more > 0) p.prefixesMore = live.more;
  if (mem.prefixesSeen.more > 0) p.prefixesSeenMore = mem.prefixesSeen.more;
  const seen = iso(mem.lastSeenAt ?? st?.lastSeenAt);
  if (seen) p.lastSeenAt = seen;
  const since = iso(st?.boundSince);
  if (since) p.boundSince = since;
  if (st?.lastError) p.lastError = st.lastError;
  return p;
}
