/**
 * The decisions of `herald cutover`, made on the shim's evidence file: may a service be retired, what can
 * move next, who still listens. No side effects here (cutover-file.ts has them).
 */
import type { HeraldConfig, LegacyStage } from "../config/schema.js";
import { formatDuration } from "../config/units.js";
import {
  type EvidenceFile,
  type EvidenceWriteError,
  evidencePath,
  type PortEvidence,
  readEvidence,
  readEvidenceError,
  type ServiceEvidence,
} from "./evidence.js";
import { prefixText } from "./prefixes.js";

/** Evidence older than this (no write by a live shim) says nothing about who is connected now. */
export const STALE_EVIDENCE_MS = 120_000;

export interface Verdict {
  ok: boolean;
  /** One sentence a person can act on. */
  reason: string;
  /** Subscribers seen since the stage began but before the grace period, retired over (acceptPastSubscribers). */
  accepted?: string[];
}

export interface PlanEntry {
  service: string;
  stage: LegacyStage;
  /** What can happen next: bridge (move the app to herald), retire, wait, or nothing. */
  next: "bridge" | "retire" | "wait" | "done";
  reason: string;
  /** Connected now, or seen within the grace period. */
  listeners: string[];
  /** Seen since the service entered its stage, longer ago than the grace period: they may come back. */
  pastListeners: string[];
  /** A retired service's watch after retirement (legacy.watchRetired): until when, who came (watchLines). */
  watch?: string[];
}

export interface CheckOptions {
  /** Retire although subscribers were seen since the service was bridged (before the grace period). */
  acceptPastSubscribers?: boolean;
  /** The shim's last failure to write the evidence, to explain missing or stale evidence. */
  writeError?: EvidenceWriteError | undefined;
}

export function loadEvidence(config: HeraldConfig): EvidenceFile | undefined {
  return readEvidence(evidencePath(config.paths.dataDir));
}

/** The shim's note of a failed evidence write, when it is newer than the evidence itself. */
export function loadEvidenceError(
  config: HeraldConfig,
  ev: EvidenceFile | undefined,
): EvidenceWriteError | undefined {
  const e = readEvidenceError(evidencePath(config.paths.dataDir));
  if (!e || (ev && Date.parse(e.at) < Date.parse(ev.updatedAt))) return undefined;
  return e;
}

/** Is the shim that wrote the evidence alive and writing? */
export function evidenceProblem(
  ev: EvidenceFile | undefined,
  now = Date.now(),
  writeError?: EvidenceWriteError,
): string | undefined {
  const failed = writeError ? ` (its last write failed at ${writeError.at}: ${writeError.message})` : "";
  if (!ev)
    return `no shim evidence yet${failed}: start the shim (\`herald serve\` with legacy.enabled, or \`herald shim\`)`;
  if (!pidAlive(ev.pid)) return `the shim that wrote the evidence (pid ${ev.pid}) is not running: start it`;
  const age = now - Date.parse(ev.updatedAt);
  if (age > STALE_EVIDENCE_MS)
    return `the shim's evidence is ${formatDuration(age)} old${failed}: ${failed ? "free the disk or fix the permissions of its data dir" : "is the shim stuck?"}`;
  return undefined;
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

const ago = (iso: string, now: number): string => `${formatDuration(Math.max(0, now - Date.parse(iso)))} ago`;

/** Who listens on a service's ports now or within the grace period, one line each. */
export function listeners(s: ServiceEvidence, graceMs: number, now = Date.now()): string[] {
  const out: string[] = [];
  for (const p of Object.values(s.ports)) {
    const prefixes =
      p.prefixes.length > 0
        ? prefixText(p.prefixes, p.prefixesMore)
        : prefixText(p.prefixesSeen, p.prefixesSeenMore);
    if (p.connected > 0)
      out.push(
        `${p.endpoint}: ${p.connected} subscriber(s) connected now (prefixes ${prefixes || "none yet"})`,
      );
    else if (p.lastSeenAt && now - Date.parse(p.lastSeenAt) < graceMs)
      out.push(
        `${p.endpoint}: a subscriber was seen ${ago(p.lastSeenAt, now)} (prefixes ${prefixes || "unknown"})`,
      );
  }
  return out;
}

/**
 * Who was seen since the service entered its stage, but longer ago than the grace period: a consumer that
 * runs less often than that (a nightly job) looks gone but comes back.
 */
export function pastListeners(s: ServiceEvidence, graceMs: number, now = Date.now()): string[] {
  const since = Date.parse(s.stageSince);
  return Object.values(s.ports)
    .filter((p) => p.connected === 0 && p.lastSeenAt !== undefined)
    .filter((p) => Date.parse(p.lastSeenAt!) >= since && now - Date.parse(p.lastSeenAt!) >= graceMs)
    .map(
      (p) =>
        `${p.endpoint}: a subscriber was seen ${ago(p.lastSeenAt!, now)}, since ${s.stage} at ${s.stageSince} but before the grace period (prefixes ever seen there: ${prefixText(p.prefixesSeen, p.prefixesSeenMore) || "unknown"})`,
    );
}

/**
 * A retired service's watch after retirement, one line for a person: until when its old ports are
 * watched, and the old subscribers (stragglers) that came since the retirement, with what to do.
 */
export function watchLines(service: string, s: ServiceEvidence, now = Date.now()): string[] {
  const w = s.stage === "retired" ? s.watch : undefined;
  if (!w) return [];
  const on = Date.parse(w.until) > now && Object.values(s.ports).some((p) => p.bound);
  const head = on
    ? `its old ports are watched until ${w.until} (legacy.watchRetired)`
    : `its old ports were watched until ${w.until} and are closed`;
  if (w.stragglers === 0 && w.lastSeenAt === undefined)
    return [`${head}: no old subscriber came since the retirement`];
  const connected = Object.values(s.ports).reduce((n, p) => n + p.connected, 0);
  const seen =
    connected > 0 ? `, ${connected} connected now` : w.lastSeenAt ? `, last ${ago(w.lastSeenAt, now)}` : "";
  const prefixes = prefixText(w.prefixes, w.prefixesMore) || "none";
  return [
    `${head}: ${w.stragglers} old subscriber connection(s) since the retirement${seen} (prefixes ${prefixes}); they get nothing: move them to herald (docs/migration.md) or run \`herald cutover restore ${service}\``,
  ];
}

/** May this service be retired now? Conservative: no evidence for the whole grace period means no. */
export function checkRetire(
  service: string,
  stage: LegacyStage,
  ev: EvidenceFile | undefined,
  graceMs: number,
  now = Date.now(),
  opts: CheckOptions = {},
): Verdict {
  const problem = stage === "retired" ? undefined : evidenceProblem(ev, now, opts.writeError);
  if (problem) return { ok: false, reason: problem };
  const s = ev?.services[service];
  if (stage === "retired") return alreadyRetired(service, ev, now);
  if (!s)
    return {
      ok: false,
      reason: `the shim has no evidence for ${service}: is it in legacy.services or legacy.config?`,
    };
  const blocked = stageProblem(service, stage, s) ?? watchProblem(service, s, ev!, graceMs, now);
  if (blocked) return { ok: false, reason: blocked };
  const grace = formatDuration(graceMs);
  const reason = `no subscriber on ${currentPorts(s).length} port(s) for ${grace} of watching`;
  const past = pastListeners(s, graceMs, now);
  if (past.length === 0) return { ok: true, reason };
  if (opts.acceptPastSubscribers)
    return { ok: true, reason: `${reason}; accepted as gone: ${past.join("; ")}`, accepted: past };
  return {
    ok: false,
    reason: `subscribers were seen on ${service}'s ports since it became ${s.stage} and may come back (a job that runs less often than the grace period ${grace}): ${past.join("; ")}. Find and move them, or retire anyway with --accept-past-subscribers`,
  };
}

/** Retired in the file: done, unless the running shim still holds the ports open (a retire it held back). */
function alreadyRetired(service: string, ev: EvidenceFile | undefined, now: number): Verdict {
  const s = ev?.services[service];
  if (s && s.stage !== "retired" && evidenceProblem(ev, now) === undefined)
    return {
      ok: false,
      reason: `${service} is retired in the config file but the running shim still has it at ${s.stage}${s.pending ? ` (${s.pending.reason})` : ""}: it is applied at the next reload (SIGHUP) once nobody is connected, or run \`herald cutover restore ${service}\` to set the file back`,
    };
  return { ok: true, reason: `${service} is already retired` };
}

/** The stage in the file and in the shim must agree, and only a bridged service can be watched. */
function stageProblem(service: string, stage: LegacyStage, s: ServiceEvidence): string | undefined {
  if (s.stage !== stage)
    return `the running shim still has ${service} at stage ${s.stage}, not ${stage}: reload it (SIGHUP) and retry`;
  if (stage === "legacy")
    // The old app binds its own ports: who listens there cannot be seen until the shim holds them.
    return `${service} is still legacy: only ports the shim holds show who listens; move its app to herald and set it to bridged first`;
  return undefined;
}

/** Ports of endpoints no longer configured stay in the history (their lastSeenAt is counted in listeners). */
function currentPorts(s: ServiceEvidence): PortEvidence[] {
  return Object.values(s.ports).filter((p) => s.endpoints.includes(p.endpoint));
}

/** Has every port here been watched, with nobody there, for the whole grace period? */
function watchProblem(
  service: string,
  s: ServiceEvidence,
  ev: EvidenceFile,
  graceMs: number,
  now: number,
): string | undefined {
  const who = listeners(s, graceMs, now);
  if (who.length > 0) return `${service} still has listeners: ${who.join("; ")}`;
  const current = currentPorts(s);
  if (current.length === 0)
    return `no port of ${service} (${s.endpoints.join(", ")}) is on this host, so nobody can be watched here: retire it with the shim on its host`;
  for (const p of current) {
    if (!p.bound || !p.boundSince)
      return `${p.endpoint} is not bound by the shim (${p.lastError ?? "binding"}), so nobody can be watched there yet`;
    const quiet = quietNow(p, Date.parse(ev.updatedAt), now);
    if (quiet < graceMs)
      return `${p.endpoint} has been watched with nobody connected for ${formatDuration(Math.max(0, Math.floor(quiet / 1000) * 1000))} (summed over shim restarts; time the shim was down is not counted); retire after the grace period (${formatDuration(graceMs)})`;
  }
  return undefined;
}

/**
 * Quiet watched time now: what the shim counted up to its last write, plus the time since. A live shim
 * rewrites its evidence within a second of anyone connecting, so a port quiet then is quiet now.
 */
function quietNow(p: PortEvidence, updatedAt: number, now: number): number {
  const counted = p.quietWatchedMs ?? updatedAt - Date.parse(p.boundSince!); // evidence of an older shim
  return counted + Math.max(0, now - updatedAt);
}

/** Which services can move next, and what still listens where. */
export function planCutover(
  config: HeraldConfig,
  stages: Map<string, LegacyStage>,
  ev: EvidenceFile | undefined,
  now = Date.now(),
  opts: CheckOptions = {},
): PlanEntry[] {
  const grace = config.legacy.grace;
  return [...stages].map(([service, stage]) => {
    const s = ev?.services[service];
    const who = {
      listeners: s ? listeners(s, grace, now) : [],
      pastListeners: s ? pastListeners(s, grace, now) : [],
    };
    const v = checkRetire(service, stage, ev, grace, now, opts);
    if (stage === "retired") {
      const watch = s ? watchLines(service, s, now) : [];
      const next = v.ok ? "done" : "wait";
      return {
        service,
        stage,
        next,
        reason: v.ok ? "retired" : v.reason,
        ...who,
        ...(watch.length > 0 ? { watch } : {}),
      };
    }
    if (v.ok) return { service, stage, next: "retire", reason: v.reason, ...who };
    if (stage === "legacy")
      return {
        service,
        stage,
        next: "bridge",
        reason: `move its app to herald, then set stage bridged (${v.reason})`,
        ...who,
      };
    return { service, stage, next: "wait", reason: v.reason, ...who };
  });
}
