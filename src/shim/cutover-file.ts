/**
 * The side effects of `herald cutover`: edit a service's stage in the herald YAML file, tell the running
 * shim to reload, append to cutover.log. The decisions are in cutover-check.ts, the sequence in cutover.ts.
 */
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
import { ConfigError, HeraldError } from "../errors.js";
import { withFileLock } from "../util/file-lock.js";

export function cutoverLogPath(config: HeraldConfig): string {
  return join(config.paths.dataDir, "cutover.log");
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

/** Log an action that changes nothing (a refusal, a dry run): a log that cannot be written is a warning. */
export function tryCutoverLog(
  config: HeraldConfig,
  entry: Record<string, unknown>,
  warn: (message: string) => void,
): void {
  try {
    appendCutoverLog(config, entry);
  } catch (err) {
    warn(
      `could not append to ${cutoverLogPath(config)} (${(err as Error).message}); this entry is not logged`,
    );
  }
}

/**
 * Log an intended change before making it: when the log cannot be written, nothing is changed, so that
 * cutover.log never misses a change that was made.
 */
export function logIntent(config: HeraldConfig, entry: Record<string, unknown>): void {
  try {
    appendCutoverLog(config, { ...entry, result: "intent" });
  } catch (err) {
    throw new HeraldError(
      "CUTOVER_REFUSED",
      `cannot append to ${cutoverLogPath(config)} (${(err as Error).message}): nothing was changed, since every change is logged there first; fix the path or its permissions`,
      { cause: err, details: { log: cutoverLogPath(config) } },
    );
  }
}

/** Do two paths name the same file (through symlinks)? */
export function sameFile(a: string, b: string): boolean {
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  return real(a) === real(b);
}
