import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { LegacyStage } from "../config/schema.js";
import { type Logger, silentLogger } from "../util/log.js";

/** What the shim knows about one legacy port it binds (times are ISO strings). */
export interface PortEvidence {
  endpoint: string;
  bound: boolean;
  /** When the shim bound it (this run). */
  boundSince?: string;
  /**
   * How long the port has been watched with nobody connected: since the later of the last subscriber seen
   * and the start of the service's stage, summed over shim runs. Time the shim was down (or the port not
   * bound) is not counted: nobody watched then. Absent in evidence from before this was recorded.
   */
  quietWatchedMs?: number;
  serving: boolean;
  /** Subscribers connected now (monitor accept minus disconnect). */
  connected: number;
  /** Last time anyone was connected, connected, left or (un)subscribed; kept across restarts. */
  lastSeenAt?: string;
  /** Topic prefixes subscribed on this port now (XPUB). "" = everything. At most 200, each cut (prefixes.ts). */
  prefixes: string[];
  /** Prefixes subscribed now and not listed (over 200). Absent when none. */
  prefixesMore?: number;
  /**
   * Prefixes subscribed here (kept across restarts), for "who used this": the newest 200, each cut to 256
   * characters (src/shim/prefixes.ts).
   */
  prefixesSeen: string[];
  /** Prefixes seen and let go to keep prefixesSeen at 200 (counted again if seen again). Absent when none. */
  prefixesSeenMore?: number;
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
  /**
   * The configuration asks for another stage than `stage` (the one in effect) and the shim held it back,
   * e.g. retired while a subscriber is connected: `since` is when it decided, `reason` says why.
   */
  pending?: { stage: LegacyStage; since: string; reason: string };
  /**
   * Retired with `legacy.watchRetired` on: the old ports stay bound, serving nothing, until `until`
   * (stageSince + watchRetired), so an old subscriber that was away during the evidence window is seen.
   * Kept across shim restarts while the service stays retired (also after the watch ended).
   */
  watch?: WatchEvidence;
}

export interface WatchEvidence {
  /** When the watch ends and the ports close (the shim checks every second). */
  until: string;
  /** Connections accepted on the watched ports since the retirement, summed over shim runs. */
  stragglers: number;
  /** Last connection, disconnection or (un)subscription there, or now while one is connected. */
  lastSeenAt?: string;
  /** Topic prefixes subscribed there since the retirement: the newest 200, as PortEvidence.prefixesSeen. */
  prefixes: string[];
  /** Prefixes let go to keep `prefixes` at 200. Absent when none. */
  prefixesMore?: number;
}

export interface EvidenceFile {
  version: 1;
  broker: string;
  pid: number;
  /** The herald config file the shim reloads (on SIGHUP or a change); absent when it runs without one. */
  configFile?: string;
  /** When the shim last wrote the file; an old value means the shim is not running. */
  updatedAt: string;
  relayInbound?: {
    endpoint: string;
    bound: boolean;
    lastSeenAt?: string;
    ingested: number;
    /** Absent in files written before these were counted. */
    malformed?: number;
    /** Publishers' connections ended: a script finished, or libzmq dropped it for a frame over the limit. */
    disconnects?: number;
  };
  services: Record<string, ServiceEvidence>;
}

export function evidencePath(dataDir: string): string {
  return join(dataDir, "shim-evidence.json");
}

/** Where the shim notes why it cannot write the evidence (best effort: the same disk may refuse it too). */
export function evidenceErrorPath(evidence: string): string {
  return `${evidence}.error`;
}

export interface EvidenceWriteError {
  at: string;
  message: string;
}

/** The last evidence write failure the shim could note, if any. */
export function readEvidenceError(evidence: string): EvidenceWriteError | undefined {
  try {
    const v = JSON.parse(readFileSync(evidenceErrorPath(evidence), "utf8")) as EvidenceWriteError;
    return typeof v.message === "string" && typeof v.at === "string" ? v : undefined;
  } catch {
    return undefined;
  }
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
  /** The failure being reported, so a full disk is logged once, not four times a second. */
  private failing: string | undefined;
  /** A note left by an earlier run is cleared at this run's first good write. */
  private noteCleared = false;

  constructor(
    private readonly path: string,
    private readonly snapshot: () => EvidenceFile,
    private readonly heartbeatMs = 5000,
    private readonly log: Logger = silentLogger,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), 250);
    this.timer.unref();
  }

  private tick(force = false): void {
    const now = Date.now();
    if (!force && now - this.lastWriteAt < 1000) return;
    const snap = this.snapshot();
    // Quiet watched time grows at every snapshot: no reason to write (readers add the time since updatedAt).
    const key = JSON.stringify({ ...snap, updatedAt: "" }, (k, v: unknown) =>
      k === "quietWatchedMs" ? undefined : v,
    );
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
      this.recovered();
    } catch (err) {
      // The next tick retries; a full disk must not stop the shim, but it must not go unnoticed either.
      this.failed((err as Error).message);
    }
  }

  private failed(message: string): void {
    if (this.failing === message) return;
    this.failing = message;
    this.log.error("cannot write the shim evidence: `herald cutover` will see it as stale", {
      file: this.path,
      err: message,
    });
    try {
      writeFileSync(
        evidenceErrorPath(this.path),
        `${JSON.stringify({ at: new Date().toISOString(), message })}\n`,
      );
    } catch {
      // the same cause (disk full, no permission) may stop this too: the log line above still says it
    }
  }

  private recovered(): void {
    if (this.failing === undefined && this.noteCleared) return;
    if (this.failing !== undefined)
      this.log.info("shim evidence written again", { file: this.path, after: this.failing });
    this.failing = undefined;
    try {
      rmSync(evidenceErrorPath(this.path), { force: true });
      this.noteCleared = true;
    } catch {
      // an old note stays; readers only believe one newer than the evidence
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
