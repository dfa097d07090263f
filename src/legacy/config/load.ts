import { existsSync } from "node:fs";
import { hostname as osHostname } from "node:os";
import { resolve } from "node:path";
import { normalizeLegacy } from "./normalize.js";
import { evaluateWithPython, findPython } from "./python.js";
import { evaluateRestricted } from "./restricted.js";
import { type Evaluation, type LegacyConfig, type LoadLegacyOptions, legacyError } from "./types.js";

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_MEMORY_BYTES = 512 * 1024 * 1024;

/**
 * Read a fedmsg configuration (a fedmsg.d directory or a single fedmsg-config.py) the way fedmsg does:
 * each file executed on its own, the `config` dicts merged recursively in order. Uses real python
 * (bounded in time and memory, `socket` stubbed: not a sandbox, see docs/migration.md) when available,
 * else the restricted evaluator, which
 * understands the common subset and refuses the rest with a LEGACY_CONFIG ConfigError naming the file,
 * line and construct.
 */
export async function loadLegacyConfig(path: string, opts: LoadLegacyOptions = {}): Promise<LegacyConfig> {
  const abs = resolve(path);
  if (!existsSync(abs)) {
    throw legacyError(
      "no such file or directory: point legacy.config at a fedmsg.d directory or a fedmsg-config.py file",
      { file: abs, kind: "io" },
    );
  }
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const env: Record<string, string | undefined> = { ...process.env, ...(opts.env ?? {}) };
  const warnings: string[] = [];
  const python = opts.python === false ? undefined : findPython(opts.python);
  let ev: Evaluation;
  if (python !== undefined) {
    ev = await evaluateWithPython({
      python,
      path: abs,
      timeoutMs,
      memoryBytes: opts.memoryBytes ?? DEFAULT_MEMORY_BYTES,
      env,
      ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
    });
  } else {
    if (opts.python !== false) {
      warnings.push("no python3 found: used the restricted evaluator; install python3 for full fidelity");
    }
    ev = evaluateRestricted(abs, { hostname: opts.hostname ?? osHostname(), env, timeoutMs });
  }
  return normalizeLegacy(ev, python !== undefined ? "python" : "restricted", abs, warnings);
}
