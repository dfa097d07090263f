import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { packageRoot } from "../../util/package-root.js";
import { type DroppedValue, type Evaluation, isJsonObject, type JsonObject, legacyError } from "./types.js";

/** In scripts/ at herald's root. */
export const EVALUATOR_SCRIPT = join(packageRoot(), "scripts", "fedmsg_config_eval.py");

const MARKER = "@@herald-eval begin ";
/** Grace after the deadline for the script's own timer to report; past it the process group is killed. */
const KILL_GRACE_MS = 1500;
const MAX_STDOUT = 256 * 1024 * 1024;

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The interpreter to use: an explicit path (must exist), else Debian's /usr/bin/python3, else the
 * first python3 on PATH. undefined = none found (the caller falls back to the restricted evaluator).
 */
export function findPython(explicit?: string): string | undefined {
  if (explicit !== undefined) {
    if (explicit.includes("/")) {
      if (executable(explicit)) return explicit;
      throw legacyError(
        `python interpreter ${explicit} is not executable: fix the path, or pass python: false to use the restricted evaluator`,
        { kind: "python" },
      );
    }
    return onPath(explicit) ?? missing(explicit);
  }
  if (executable("/usr/bin/python3")) return "/usr/bin/python3";
  return onPath("python3");
}

function missing(name: string): never {
  throw legacyError(
    `python interpreter ${name} was not found on PATH: install it, give a full path, or pass python: false`,
    { kind: "python" },
  );
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir && executable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

export interface PythonRun {
  python: string;
  path: string;
  timeoutMs: number;
  memoryBytes: number;
  hostname?: string;
  env: Record<string, string | undefined>;
}

interface ScriptError {
  file: string | null;
  line: number | null;
  kind: string;
  type: string;
  message: string;
}

/** Run scripts/fedmsg_config_eval.py in its own process group and turn its answer into an Evaluation. */
export function evaluateWithPython(run: PythonRun): Promise<Evaluation> {
  const args = [
    EVALUATOR_SCRIPT,
    "--timeout",
    String(run.timeoutMs / 1000),
    "--memory",
    String(run.memoryBytes),
  ];
  if (run.hostname !== undefined) args.push("--hostname", run.hostname);
  args.push("--", run.path);
  return new Promise((resolve, reject) => {
    const child = spawn(run.python, args, {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: run.env,
    });
    const out: Buffer[] = [];
    let outBytes = 0;
    let errTail = "";
    let current: string | undefined;
    let killed = false;
    const kill = (): void => {
      killed = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(kill, run.timeoutMs + KILL_GRACE_MS);
    child.stdout.on("data", (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > MAX_STDOUT) kill();
      else out.push(b);
    });
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => {
      errTail = (errTail + s).slice(-65536);
      const at = errTail.lastIndexOf(MARKER);
      if (at >= 0) {
        const end = errTail.indexOf("\n", at);
        if (end > at) current = errTail.slice(at + MARKER.length, end);
      }
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(
        legacyError(
          `could not start ${run.python}: ${err.message}; fix the python path or pass python: false`,
          { kind: "python" },
          err,
        ),
      );
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      try {
        resolve(finish(run, Buffer.concat(out).toString("utf8"), errTail, { code, signal, killed, current }));
      } catch (err) {
        reject(err);
      }
    });
  });
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  killed: boolean;
  current: string | undefined;
}

function finish(run: PythonRun, stdout: string, stderr: string, exit: Exit): Evaluation {
  const file = exit.current ?? run.path;
  if (exit.killed) {
    throw legacyError(
      `evaluation did not finish within ${run.timeoutMs} ms (killed): the file loops forever or blocks (a fedmsg config evaluates in well under a second); fix it. Library callers set the limit with loadLegacyConfig's timeoutMs`,
      { file, kind: "timeout" },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    const memory = /MemoryError|Cannot allocate memory|out of memory/i.test(stderr);
    if (memory) throw memoryError(run, file, undefined);
    const tail = stderr
      .replaceAll(/^@@herald-eval.*\n/gm, "")
      .trim()
      .slice(-2000);
    throw legacyError(
      `python evaluator failed (exit ${exit.code ?? exit.signal}) without an answer: ${tail || "no output"}; fix the file, or check the interpreter ${run.python}`,
      { file, kind: "crash" },
    );
  }
  if (!isJsonObject(parsed))
    throw legacyError("python evaluator printed something that is not a JSON object", { file });
  const errors = (parsed["errors"] ?? []) as unknown as ScriptError[];
  const first = errors[0];
  if (first) throw scriptError(run, first, errors.length);
  return {
    config: (parsed["config"] ?? {}) as JsonObject,
    files: (parsed["files"] ?? []) as string[],
    withoutConfig: (parsed["without_config"] ?? []) as string[],
    origins: (parsed["origins"] ?? {}) as Record<string, string>,
    dropped: (parsed["dropped"] ?? []) as unknown as DroppedValue[],
  };
}

function memoryError(run: PythonRun, file: string, line: number | undefined): Error {
  const mib = Math.round(run.memoryBytes / 1048576);
  return legacyError(
    `evaluation ran out of memory (limit ${mib} MiB): the file builds something enormous; fix it, or raise memoryBytes`,
    { file, ...(line ? { line } : {}), kind: "memory" },
  );
}

function scriptError(run: PythonRun, e: ScriptError, count: number): Error {
  const file = e.file ?? run.path;
  const line = e.line ?? undefined;
  const more = count > 1 ? ` (and ${count - 1} more error${count > 2 ? "s" : ""})` : "";
  const where = { file, ...(line ? { line } : {}), kind: e.kind };
  switch (e.kind) {
    case "timeout":
      return legacyError(
        `evaluation did not finish within ${run.timeoutMs} ms: the file loops forever or blocks (a fedmsg config evaluates in well under a second); fix it. Library callers set the limit with loadLegacyConfig's timeoutMs`,
        where,
      );
    case "memory":
      return memoryError(run, file, line);
    case "syntax":
      return legacyError(
        `python syntax error: ${e.message}${more}; fix the file (it must be valid python 3)`,
        where,
      );
    case "io":
      return legacyError(
        `cannot read the configuration: ${e.type}: ${e.message}${more}; fix the path or permissions`,
        where,
      );
    default:
      return legacyError(
        `the file raised ${e.type}: ${e.message}${more}; fix the file so fedmsg itself could load it`,
        where,
      );
  }
}
