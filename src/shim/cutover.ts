/**
 * `herald cutover retire|restore`: decide on the shim's evidence (cutover-check.ts), log the intent, edit
 * the stage in the herald YAML file, make the running shim reload, and wait until its evidence confirms
 * the change; a change it did not apply is put back. Every step is in `<dataDir>/cutover.log`.
 */
import type { HeraldConfig, LegacyStage } from "../config/schema.js";
import { formatDuration } from "../config/units.js";
import { ConfigError, HeraldError } from "../errors.js";
import {
  checkRetire,
  evidenceProblem,
  loadEvidence,
  loadEvidenceError,
  pidAlive,
  type Verdict,
} from "./cutover-check.js";
import { logIntent, sameFile, setStageInFile, signalShim, tryCutoverLog } from "./cutover-file.js";
import type { EvidenceFile, ServiceEvidence } from "./evidence.js";

export * from "./cutover-check.js";
export { appendCutoverLog, cutoverLogPath, setStageInFile, signalShim } from "./cutover-file.js";

/**
 * How long retire/restore wait for the running shim to confirm a change: it rewrites its evidence right
 * after a reload (and at least once a second), so this is that second plus a margin for a busy shim.
 */
export const CONFIRM_MS = 5_000;

export interface CutoverResult {
  action: "retire" | "restore";
  service: string;
  done: boolean;
  dryRun: boolean;
  reason: string;
  signalled: string;
  /** What the running shim's evidence confirmed, or why there was no shim to wait for. */
  confirmed: string;
  /** Problems that did not stop the command (an unwritable cutover.log on a dry run, a forced grace). */
  warnings: string[];
}

export interface CutoverOptions {
  config: HeraldConfig;
  /** The herald YAML file to edit (the one `herald serve` reads). */
  file: string | undefined;
  service: string;
  stage: LegacyStage;
  graceMs?: number;
  dryRun?: boolean;
  /** Allow a grace period shorter than legacy.grace (logged). */
  force?: boolean;
  /** Retire although subscribers were seen since the service was bridged, before the grace period. */
  acceptPastSubscribers?: boolean;
  /** How long to wait for the shim's confirmation; default CONFIRM_MS. */
  confirmMs?: number;
  /** Make the running shim reload; default SIGHUP to `<runtimeDir>/herald.pid`. Returns what happened. */
  notify?: (config: HeraldConfig) => string | Promise<string>;
  /** Where warnings go besides the result; default stderr. */
  warn?: (message: string) => void;
}

type Warn = (message: string) => void;

function warner(o: CutoverOptions, into: string[]): Warn {
  const show = o.warn ?? ((m: string) => process.stderr.write(`herald: warning: ${m}\n`));
  return (m) => {
    into.push(m);
    show(m);
  };
}

/** Retire a service: refuse (CUTOVER_REFUSED) while anyone listens or listened within the grace period. */
export async function retire(o: CutoverOptions): Promise<CutoverResult> {
  const warnings: string[] = [];
  const warn = warner(o, warnings);
  const graceMs = graceFor(o, warn);
  const ev = loadEvidence(o.config);
  const writeError = loadEvidenceError(o.config, ev);
  const v: Verdict =
    configMismatch(o, ev) ??
    checkRetire(o.service, o.stage, ev, graceMs, Date.now(), {
      acceptPastSubscribers: o.acceptPastSubscribers ?? false,
      writeError,
    });
  const evidence = ev?.services[o.service];
  const extra: Record<string, unknown> = { graceMs };
  if (graceMs < o.config.legacy.grace) extra["graceOverride"] = { configuredMs: o.config.legacy.grace };
  if (v.accepted) extra["acceptedPastSubscribers"] = v.accepted;
  if (!v.ok) refuse(o, "retire", v.reason, evidence, extra, warn);
  return change(o, "retire", "retired", v.reason, evidence, extra, warnings);
}

/** Bring a retired service's ports back (stage bridged). Only from retired: bridging is a move of the app. */
export async function restore(o: CutoverOptions): Promise<CutoverResult> {
  const warnings: string[] = [];
  const warn = warner(o, warnings);
  const ev = loadEvidence(o.config);
  const evidence = ev?.services[o.service];
  if (o.stage !== "retired") refuse(o, "restore", notRetired(o), evidence, {}, warn);
  const mismatch = configMismatch(o, ev);
  if (mismatch) refuse(o, "restore", mismatch.reason, evidence, {}, warn);
  return change(o, "restore", "bridged", `was ${o.stage}`, evidence, {}, warnings);
}

/** Restore undoes a retire; bridging a legacy service is a move of its app, which this cannot check. */
function notRetired(o: CutoverOptions): string {
  if (o.stage === "bridged")
    return `it is bridged already: its old ports are open (\`herald cutover status\`)`;
  return `it is ${o.stage}, not retired: restore only reopens a retired service's ports. To bridge a legacy service, set legacy.services.${o.service}.stage: bridged in ${o.file ?? "the herald config file"} and reload, then restart its app on herald: the shim binds the old ports once the old app lets go (docs/migration.md, "Moving one app")`;
}

/** --grace below legacy.grace weakens the site's policy: only with --force, and then said and logged. */
function graceFor(o: CutoverOptions, warn: Warn): number {
  const configured = o.config.legacy.grace;
  const graceMs = o.graceMs ?? configured;
  if (graceMs >= configured) return graceMs;
  const what = `--grace ${formatDuration(graceMs)} is shorter than legacy.grace (${formatDuration(configured)})`;
  if (!o.force)
    refuse(
      o,
      "retire",
      `${what}: the evidence would cover less than the configured period; pass --force to use it anyway (logged in cutover.log)`,
      undefined,
      { graceMs, configuredGraceMs: configured },
      warn,
    );
  warn(`${what}: overridden with --force (logged in cutover.log)`);
  return graceMs;
}

/** The shim must reload the file this command edits, or the change would never reach it. */
function configMismatch(o: CutoverOptions, ev: EvidenceFile | undefined): Verdict | undefined {
  if (!ev?.configFile || o.file === undefined || evidenceProblem(ev) !== undefined) return undefined;
  if (sameFile(ev.configFile, o.file)) return undefined;
  return {
    ok: false,
    reason: `the running shim (pid ${ev.pid}) reloads ${ev.configFile}, not ${o.file}: a change there would not reach it; run with --config ${ev.configFile}`,
  };
}

function refuse(
  o: CutoverOptions,
  action: "retire" | "restore",
  reason: string,
  evidence: ServiceEvidence | undefined,
  extra: Record<string, unknown>,
  warn: Warn,
): never {
  tryCutoverLog(
    o.config,
    {
      action,
      service: o.service,
      from: o.stage,
      to: action === "retire" ? "retired" : "bridged",
      result: "refused",
      reason,
      evidence,
      ...extra,
    },
    warn,
  );
  throw new HeraldError("CUTOVER_REFUSED", `cannot ${action} ${o.service}: ${reason}`, {
    details: { service: o.service },
  });
}

async function change(
  o: CutoverOptions,
  action: "retire" | "restore",
  stage: LegacyStage,
  reason: string,
  evidence: ServiceEvidence | undefined,
  extra: Record<string, unknown>,
  warnings: string[],
): Promise<CutoverResult> {
  if (o.file === undefined)
    throw new ConfigError(
      "CONFIG",
      "no herald config file to edit: pass --config FILE (the one `herald serve` reads)",
    );
  const warn = warner(o, warnings);
  const entry = {
    action,
    service: o.service,
    from: o.stage,
    to: stage,
    reason,
    file: o.file,
    evidence,
    ...extra,
  };
  const dryRun = o.dryRun ?? false;
  const result = { action, service: o.service, done: !dryRun, dryRun, reason, warnings };
  if (dryRun || o.stage === stage) {
    tryCutoverLog(o.config, { ...entry, result: dryRun ? "dry-run" : "unchanged" }, warn);
    return { ...result, signalled: "", confirmed: "" };
  }
  logIntent(o.config, entry);
  const editedAt = Date.now();
  try {
    setStageInFile(o.file, o.service, stage, o.stage);
  } catch (err) {
    tryCutoverLog(o.config, { ...entry, result: "failed", error: (err as Error).message }, warn);
    throw err;
  }
  const signalled = await (o.notify ?? signalShim)(o.config);
  const c = await awaitShim(o, stage, editedAt);
  if (c.ok) {
    tryCutoverLog(o.config, { ...entry, result: "done", signalled, confirmed: c.text }, warn);
    return { ...result, signalled, confirmed: c.text };
  }
  const back = await putBack(o, stage, c.text, warn, entry);
  tryCutoverLog(o.config, { ...entry, result: "rolled-back", signalled, why: c.text, putBack: back }, warn);
  throw new HeraldError(
    "CUTOVER_REFUSED",
    `${action} of ${o.service} was not applied: ${c.text}. The file says ${o.stage} again (${back})`,
    { details: { service: o.service, why: c.text } },
  );
}

/** The shim did not apply the change: the file goes back to what it said, so file and shim agree. */
async function putBack(
  o: CutoverOptions,
  stage: LegacyStage,
  why: string,
  warn: Warn,
  entry: Record<string, unknown>,
): Promise<string> {
  try {
    setStageInFile(o.file!, o.service, o.stage, stage);
  } catch (err) {
    const message = (err as Error).message;
    tryCutoverLog(o.config, { ...entry, result: "not-applied", why, putBackError: message }, warn);
    throw new HeraldError(
      "CUTOVER_REFUSED",
      `the change of ${o.service} to ${stage} was not applied (${why}) and the file could not be set back to ${o.stage} (${message}): set it back by hand`,
      { cause: err, details: { service: o.service } },
    );
  }
  return await (o.notify ?? signalShim)(o.config);
}

interface Confirmation {
  ok: boolean;
  text: string;
}

/** Wait (bounded) until the running shim's evidence shows the new stage in effect, or says why not. */
async function awaitShim(o: CutoverOptions, stage: LegacyStage, editedAt: number): Promise<Confirmation> {
  const dead = evidenceProblem(loadEvidence(o.config));
  if (dead)
    // Retire was decided on a live shim's evidence; a restore needs none and applies when a shim starts.
    return stage === "retired"
      ? { ok: false, text: `nothing can confirm it: ${dead}` }
      : { ok: true, text: `not confirmed (${dead}): the ports open when the shim starts` };
  const deadline = Date.now() + (o.confirmMs ?? CONFIRM_MS);
  for (;;) {
    const ev = loadEvidence(o.config);
    const verdict = applied(ev, o.service, stage, editedAt);
    if (verdict) return verdict;
    if (Date.now() >= deadline) return { ok: false, text: notApplied(ev, o, stage) };
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What evidence written after the edit says: applied, held back, or nothing yet (undefined). */
function applied(
  ev: EvidenceFile | undefined,
  service: string,
  stage: LegacyStage,
  editedAt: number,
): Confirmation | undefined {
  if (!ev || Date.parse(ev.updatedAt) < editedAt) return undefined;
  if (!pidAlive(ev.pid)) return { ok: false, text: `the shim (pid ${ev.pid}) stopped` };
  const s = ev.services[service];
  if (s?.pending?.stage === stage && Date.parse(s.pending.since) >= editedAt)
    return { ok: false, text: `the running shim (pid ${ev.pid}) held it back: ${s.pending.reason}` };
  if (s?.stage !== stage) return undefined;
  const ports = Object.values(s.ports);
  const mine = ports.filter((p) => s.endpoints.includes(p.endpoint));
  if (stage === "retired" && ports.every((p) => !p.bound))
    return { ok: true, text: `the running shim (pid ${ev.pid}) closed its ports` };
  // legacy.watchRetired: the ports stay bound, serving nothing, to see who still comes.
  if (stage === "retired" && s.watch && ports.every((p) => !p.serving))
    return {
      ok: true,
      text: `the running shim (pid ${ev.pid}) stopped serving its ports and watches them for old subscribers until ${s.watch.until} (legacy.watchRetired)`,
    };
  if (stage !== "retired" && mine.every((p) => p.bound))
    return { ok: true, text: `the running shim (pid ${ev.pid}) bound ${mine.length} port(s)` };
  return undefined;
}

function notApplied(ev: EvidenceFile | undefined, o: CutoverOptions, stage: LegacyStage): string {
  const waited = formatDuration(o.confirmMs ?? CONFIRM_MS);
  const s = ev?.services[o.service];
  if (ev && s?.stage === stage) {
    const stuck = Object.values(s.ports)
      .filter((p) => (stage === "retired" ? p.bound && (p.serving || !s.watch) : !p.bound))
      .map((p) => `${p.endpoint}${p.lastError ? ` (${p.lastError})` : ""}`);
    return `the running shim (pid ${ev.pid}) has ${o.service} at ${stage}, but after ${waited} ${stage === "retired" ? "still holds" : "could not bind"} ${stuck.join(", ")}`;
  }
  const reads = ev?.configFile ? `it reloads ${ev.configFile}` : "it runs without a config file to reload";
  return `the running shim${ev ? ` (pid ${ev.pid})` : ""} still has ${o.service} at ${s?.stage ?? "an unknown stage"} ${waited} after ${o.file} was changed: it did not reload that file (${reads})`;
}
