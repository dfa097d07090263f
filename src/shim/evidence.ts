import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { LegacyStage } from "../config/schema.js";

/** What the shim knows about one legacy port it binds (times are ISO strings). */
export interface PortEvidence {
  endpoint: string;
  bound: boolean;
  /** When the shim bound it (this run); evidence of "nobody listens" only counts from here. */
  boundSince?: string;
  serving: boolean;
  /** Subscribers connected now (monitor accept minus disconnect). */
  connected: number;
  /** Last time anyone was connected, connected, left or (un)subscribed; kept across restarts. */
  lastSeenAt?: string;
  /** Topic prefixes subscribed on this port now (XPUB). "" = everything. */
  prefixes: string[];
  /** Every prefix ever subscribed here (kept across restarts), for "who used this". */
  prefixesSeen: string[];
  lastError?: string;
}

export interface ServiceEvidence {
  stage: LegacyStage;
  stageSince: string;
  endpoints: string[];
  ingest: {
    ingested: number;
    duplicates: number;
    malformed: number;
    rejected: number;
    dropped: number;
    lastSeenAt?: string;
  };
  ports: Record<string, PortEvidence>;
  /** Messages served on the legacy ports (this run). */
  served?: number;
}

export interface EvidenceFile {
  version: 1;
  broker: string;
  pid: number;
  /** When the shim last wrote the file; an old value means the shim is not running. */
  updatedAt: string;
  relayInbound?: { endpoint: string; bound: boolean; lastSeenAt?: string; ingested: number };
  services: Record<string, ServiceEvidence>;
}

export function evidencePath(dataDir: string): string {
  return join(dataDir, "shim-evidence.json");
}

export function readEvidence(path: string): EvidenceFile | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const v = JSON.parse(readFileSync(path, "utf8")) as EvidenceFile;
    return v.version === 1 ? v : undefined;
  } catch {
    return undefined; // a torn file cannot happen (rename), but a hand-edited one can
  }
}

/** Write JSON atomically: a reader sees the old file or the new one, never half of one. */
export function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/**
 * Persists evidence at most once a second, and only when something changed (or every `heartbeatMs`
 * while someone is connected, so `lastSeenAt` stays current for `herald cutover`).
 */
export class EvidenceWriter {
  private last = "";
  private lastWriteAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
    private readonly snapshot: () => EvidenceFile,
    private readonly heartbeatMs = 5000,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), 250);
    this.timer.unref();
  }

  private tick(force = false): void {
    const now = Date.now();
    if (!force && now - this.lastWriteAt < 1000) return;
    const snap = this.snapshot();
    const key = JSON.stringify({ ...snap, updatedAt: "" });
    const anyone = Object.values(snap.services).some((s) =>
      Object.values(s.ports).some((p) => p.connected > 0),
    );
    // Rewrite unchanged evidence periodically too: its updatedAt tells `herald cutover` the shim is alive.
    const period = anyone ? this.heartbeatMs : 30_000;
    if (!force && key === this.last && now - this.lastWriteAt < period) return;
    try {
      writeAtomic(this.path, `${JSON.stringify(snap, null, 2)}\n`);
      this.last = key;
      this.lastWriteAt = now;
    } catch {
      // the next tick retries; a full disk must not stop the shim
    }
  }

  /** Write now (stop, after a stage change). */
  flush(): void {
    this.tick(true);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.flush();
  }
}
