import type { LegacyStage } from "../config/schema.js";
import type { BridgedService, PortState } from "./bridged.js";
import type { EvidenceFile, PortEvidence, ServiceEvidence } from "./evidence.js";
import { type Ingest, RELAY_INBOUND } from "./ingest.js";
import type { ShimPlan } from "./services.js";

interface PortMemory {
  lastSeenAt?: number;
  prefixesSeen: Set<string>;
  /** Watched with nobody connected, summed over runs (see PortEvidence.quietWatchedMs). */
  quietMs: number;
  /**
   * Up to when `quietMs` is counted, in this run only: never carried over a restart, so the time the shim
   * was down is not added to it.
   */
  countedTo?: number;
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

  constructor(prev: EvidenceFile | undefined) {
    for (const [name, s] of Object.entries(prev?.services ?? {})) {
      this.stages.set(name, { stage: s.stage, since: Date.parse(s.stageSince) || Date.now() });
      if (s.ingest.lastSeenAt) this.ingest.set(name, Date.parse(s.ingest.lastSeenAt));
      const m = new Map<string, PortMemory>();
      for (const p of Object.values(s.ports)) {
        const mem: PortMemory = {
          prefixesSeen: new Set(p.prefixesSeen ?? []),
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

  /** A new stage starts a new watch: quiet time from an earlier bridged period proves nothing now. */
  stageChanged(name: string, stage: LegacyStage): void {
    const known = this.stages.get(name);
    if (known?.stage === stage) return;
    this.stages.set(name, { stage, since: Date.now() });
    for (const mem of this.ports.get(name)?.values() ?? []) {
      mem.quietMs = 0;
      delete mem.countedTo;
    }
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
      p = { prefixesSeen: new Set(), quietMs: 0 };
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
      for (const p of s.prefixes) mem.prefixesSeen.add(p);
      countQuiet(mem, s, seen, now);
    }
  }

  remembered(name: string): Map<string, PortMemory> {
    return this.ports.get(name) ?? new Map();
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
    const live = b?.portStates() ?? [];
    s.history.recordPorts(svc.name, live, now);
    const ports: Record<string, PortEvidence> = {};
    for (const [endpoint, mem] of s.history.remembered(svc.name)) {
      const st = live.find((p) => p.endpoint === endpoint);
      ports[endpoint] = portEvidence(endpoint, st, mem);
    }
    for (const st of live)
      ports[st.endpoint] ??= portEvidence(st.endpoint, st, { prefixesSeen: new Set(), quietMs: 0 });
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
      ...(c.lastSeenAt !== undefined ? { lastSeenAt: iso(c.lastSeenAt)! } : {}),
    };
  }
  return out;
}

function portEvidence(endpoint: string, st: PortState | undefined, mem: PortMemory): PortEvidence {
  const p: PortEvidence = {
    endpoint,
    bound: st?.bound ?? false,
    serving: st?.serving ?? false,
    connected: st?.connected ?? 0,
    prefixes: st?.prefixes ?? [],
    prefixesSeen: [...new Set([...mem.prefixesSeen, ...(st?.prefixes ?? [])])].sort(),
    quietWatchedMs: mem.quietMs,
  };
  const seen = iso(mem.lastSeenAt ?? st?.lastSeenAt);
  if (seen) p.lastSeenAt = seen;
  const since = iso(st?.boundSince);
  if (since) p.boundSince = since;
  if (st?.lastError) p.lastError = st.lastError;
  return p;
}
