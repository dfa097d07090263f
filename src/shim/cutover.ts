import {
  appendFileSync,
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { parseDocument } from "yaml";
import type { HeraldConfig, LegacyStage } from "../config/schema.js";
import { formatDuration } from "../config/units.js";
import { ConfigError, HeraldError } from "../errors.js";
import { withFileLock } from "../util/file-lock.js";
import { type EvidenceFile, evidencePath, readEvidence, type ServiceEvidence } from "./evidence.js";

/** Evidence older than this (no write by a live shim) says nothing about who is connected now. */
export const STALE_EVIDENCE_MS = 120_000;

export interface Verdict {
  ok: boolean;
  /** One sentence a person can act on. */
  reason: string;
}

export interface PlanEntry {
  service: string;
  stage: LegacyStage;
  /** What can happen next: bridge (move the app to herald), retire, wait, or nothing. */
  next: "bridge" | "retire" | "wait" | "done";
  reason: string;
  listeners: string[];
}

export interface CutoverResult {
  action: "retire" | "restore";
  service: string;
  done: boolean;
  dryRun: boolean;
  reason: string;
  signalled: string;
}

export function cutoverLogPath(config: HeraldConfig): string {
  return join(config.paths.dataDir, "cutover.log");
}

export function loadEvidence(config: HeraldConfig): EvidenceFile | undefined {
  return readEvidence(evidencePath(config.paths.dataDir));
}

/** Is the shim that wrote the evidence alive and writing? */
export function evidenceProblem(ev: EvidenceFile | undefined, now = Date.now()): string | undefined {
  if (!ev)
    return "no shim evidence yet: start the shim (`herald serve` with legacy.enabled, or `herald shim`)";
  if (!pidAlive(ev.pid)) return `the shim that wrote the evidence (pid ${ev.pid}) is not running: start it`;
  const age = now - Date.parse(ev.updatedAt);
  if (age > STALE_EVIDENCE_MS) return `the shim's evidence is ${formatDuration(age)} old: is the shim stuck?`;
  return undefined;
}

function pidAlive(pid: number): boolean {
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
    const prefixes = (p.prefixes.length > 0 ? p.prefixes : p.prefixesSeen)
      .map((x) => JSON.stringify(x))
      .join(", ");
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

/** May this service be retired now? Conservative: no evidence for the whole grace period means no. */
export function checkRetire(
  service: string,
  stage: LegacyStage,
  ev: EvidenceFile | undefined,
  graceMs: number,
  now = Date.now(),
): Verdict {
  if (stage === "retired") return { ok: true, reason: `${service} is already retired` };
  const problem = evidenceProblem(ev, now);
  if (problem) return { ok: false, reason: problem };
  const s = ev!.services[service];
  if (!s)
    return {
      ok: false,
      reason: `the shim has no evidence for ${service}: is it in legacy.services or legacy.config?`,
    };
  const grace = formatDuration(graceMs);
  if (s.stage !== stage)
    return {
      ok: false,
      reason: `the running shim still has ${service} at stage ${s.stage}, not ${stage}: reload it (SIGHUP) and retry`,
    };
  if (stage === "legacy")
    // The old app binds its own ports: who listens there cannot be seen until the shim holds them.
    return {
      ok: false,
      reason: `${service} is still legacy: only ports the shim holds show who listens; move its app to herald and set it to bridged first`,
    };
  const who = listeners(s, graceMs, now);
  if (who.length > 0) return { ok: false, reason: `${service} still has listeners: ${who.join("; ")}` };
  // Ports of endpoints no longer configured stay in the history (their lastSeenAt counted above).
  const current = Object.values(s.ports).filter((p) => s.endpoints.includes(p.endpoint));
  if (current.length === 0)
    return {
      ok: false,
      reason: `no port of ${service} (${s.endpoints.join(", ")}) is on this host, so nobody can be watched here: retire it with the shim on its host`,
    };
  for (const p of current) {
    if (!p.bound || !p.boundSince)
      return {
        ok: false,
        reason: `${p.endpoint} is not bound by the shim (${p.lastError ?? "binding"}), so nobody can be watched there yet`,
      };
    if (now - Date.parse(p.boundSince) < graceMs)
      return {
        ok: false,
        reason: `${p.endpoint} has been watched only since ${p.boundSince}; retire after the grace period (${grace})`,
      };
  }
  return { ok: true, reason: `no subscriber on ${current.length} port(s) for ${grace}` };
}

/** Which services can move next, and what still listens where. */
export function planCutover(
  config: HeraldConfig,
  stages: Map<string, LegacyStage>,
  ev: EvidenceFile | undefined,
  now = Date.now(),
): PlanEntry[] {
  const grace = config.legacy.grace;
  return [...stages].map(([service, stage]) => {
    const s = ev?.services[service];
    const who = s ? listeners(s, grace, now) : [];
    if (stage === "retired") return { service, stage, next: "done", reason: "retired", listeners: who };
    const v = checkRetire(service, stage, ev, grace, now);
    if (v.ok) return { service, stage, next: "retire", reason: v.reason, listeners: who };
    if (stage === "legacy")
      return {
        service,
        stage,
        next: "bridge",
        reason: `move its app to herald, then set stage bridged (${v.reason})`,
        listeners: who,
      };
    return { service, stage, next: "wait", reason: v.reason, listeners: who };
  });
}

/**
 * Set `legacy.services.<service>.stage` in the YAML file, keeping its comments and layout. Under a lock,
 * and only if the file still says `from` (when given and the file names a stage): the caller decided on
 * the stage it loaded, and another cutover may have changed it since.
 */
export function setStageInFile(
  file: string,
  service: string,
  stage: LegacyStage,
  from?: LegacyStage,
  lockWaitMs?: number,
): void {
  const target = realpathSync(file);
  withFileLock(
    target,
    () => {
      const doc = parseDocument(readFileSync(target, "utf8"));
      if (doc.errors.length > 0)
        throw new ConfigError(
          "CONFIG",
          `${file} does not parse as YAML (${doc.errors[0]!.message}): fix it first`,
        );
      const now = doc.getIn(["legacy", "services", service, "stage"]);
      if (from !== undefined && now !== undefined && now !== from)
        throw new HeraldError(
          "CUTOVER_REFUSED",
          `${service} changed to stage ${String(now)} in ${file} since this command read it (${from}): another cutover ran meanwhile; check \`herald cutover plan\` and run again`,
          { details: { service, expected: from, found: now } },
        );
      doc.setIn(["legacy", "services", service, "stage"], stage);
      writeInPlace(target, doc.toString());
    },
    lockWaitMs,
  );
}

/**
 * Replace a config file's text atomically, as the file it is: through a symlink (the managed target
 * changes, the link stays), keeping its mode and, where allowed, its owner.
 */
function writeInPlace(file: string, text: string): void {
  const target = realpathSync(file);
  const st = statSync(target);
  const tmp = `${target}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: st.mode & 0o7777 });
  chmodSync(tmp, st.mode & 0o7777); // the umask applied to writeFileSync's mode
  try {
    chownSync(tmp, st.uid, st.gid);
  } catch {
    // not ours to give away (not root): the file keeps its mode, and its owner is whoever edits it
  }
  renameSync(tmp, target);
}

/** Tell the running shim to reload: SIGHUP to `<runtimeDir>/herald.pid`. Returns what happened. */
export function signalShim(config: HeraldConfig): string {
  const file = join(config.paths.runtimeDir, "herald.pid");
  if (!existsSync(file))
    return `no ${file}: a running shim picks the change up from the file within a second`;
  const pid = Number(readFileSync(file, "utf8").trim());
  // The file outlives a killed broker, and its pid may since name another process (or, garbage, 0: the
  // whole process group). Only a live herald gets the signal.
  if (!isHerald(pid))
    return `${file} names pid ${pid}, which is not a running herald (a stale file): a running shim picks the change up from the file within a second`;
  try {
    process.kill(pid, "SIGHUP");
    return `sent SIGHUP to pid ${pid}`;
  } catch (err) {
    return `could not signal pid ${pid} (${(err as NodeJS.ErrnoException).code}): the change applies when the shim next starts or polls the file`;
  }
}

function isHerald(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 1) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("herald");
  } catch {
    return false;
  }
}

export function appendCutoverLog(config: HeraldConfig, entry: Record<string, unknown>): void {
  mkdirSync(config.paths.dataDir, { recursive: true });
  appendFileSync(cutoverLogPath(config), `${JSON.stringify({ at: new Date().toISOString(), ...entry })}\n`);
}

export interface CutoverOptions {
  config: HeraldConfig;
  /** The herald YAML file to edit (the one `herald serve` reads). */
  file: string | undefined;
  service: string;
  stage: LegacyStage;
  graceMs?: number;
  dryRun?: boolean;
}

/** Retire a service: refuse (CUTOVER_REFUSED) while anyone listens or listened within the grace period. */
export function retire(o: CutoverOptions): CutoverResult {
  const graceMs = o.graceMs ?? o.config.legacy.grace;
  const ev = loadEvidence(o.config);
  const v = checkRetire(o.service, o.stage, ev, graceMs);
  const evidence = ev?.services[o.service];
  if (!v.ok) {
    appendCutoverLog(o.config, {
      action: "retire",
      service: o.service,
      result: "refused",
      reason: v.reason,
      graceMs,
      evidence,
    });
    throw new HeraldError("CUTOVER_REFUSED", `cannot retire ${o.service}: ${v.reason}`, {
      details: { service: o.service },
    });
  }
  return change(o, "retire", "retired", v.reason, evidence, { graceMs });
}

/** Bring a retired service's ports back (stage bridged). */
export function restore(o: CutoverOptions): CutoverResult {
  const ev = loadEvidence(o.config)?.services[o.service];
  return change(o, "restore", "bridged", `was ${o.stage}`, ev, {});
}

function change(
  o: CutoverOptions,
  action: "retire" | "restore",
  stage: LegacyStage,
  reason: string,
  evidence: ServiceEvidence | undefined,
  extra: Record<string, unknown>,
): CutoverResult {
  if (o.file === undefined)
    throw new ConfigError(
      "CONFIG",
      "no herald config file to edit: pass --config FILE (the one `herald serve` reads)",
    );
  const dryRun = o.dryRun ?? false;
  let signalled = "";
  if (!dryRun && o.stage !== stage) {
    setStageInFile(o.file, o.service, stage, o.stage);
    signalled = signalShim(o.config);
  }
  const result = dryRun ? "dry-run" : o.stage === stage ? "unchanged" : "done";
  appendCutoverLog(o.config, {
    action,
    service: o.service,
    from: o.stage,
    to: stage,
    result,
    reason,
    file: o.file,
    signalled,
    evidence,
    ...extra,
  });
  return { action, service: o.service, done: !dryRun, dryRun, reason, signalled };
}
