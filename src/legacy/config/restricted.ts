import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { setOwn } from "../../util/own.js";
import { recordOrigins, recursiveUpdate } from "./merge.js";
import { makeBuiltins, makeModules } from "./restricted/builtins.js";
import { PyException, RestrictedError } from "./restricted/errors.js";
import { Interpreter } from "./restricted/interp.js";
import { parse } from "./restricted/parser.js";
import {
  Budget,
  compare,
  floatRepr,
  PyDict,
  PyList,
  PySet,
  PyTuple,
  type PyValue,
  repr,
  typeName,
} from "./restricted/values.js";
import { type DroppedValue, type Evaluation, type Json, type JsonObject, legacyError } from "./types.js";

export { tokenize } from "./restricted/lexer.js";
export { parse } from "./restricted/parser.js";

export interface RestrictedOptions {
  hostname: string;
  env: Record<string, string | undefined>;
  /** Deadline for the whole evaluation. Default 10 000 ms. */
  timeoutMs?: number;
}

/** The files fedmsg would read for `path`: a directory's *.py in lexical order, or the file itself. */
export function gatherConfigFiles(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((n) => n.endsWith(".py"))
    .sort()
    .map((n) => join(path, n))
    .filter(isFile);
}

/** fedmsg's os.path.isfile: what cannot be stat'ed (a dangling symlink, a race) is no file, not an error. */
function isFile(f: string): boolean {
  try {
    return statSync(f).isFile();
  } catch {
    return false;
  }
}

/**
 * Evaluate one config file's source with the restricted evaluator. Returns its `config` dict as
 * JSON (undefined when the file defines none). Throws only ConfigError (code LEGACY_CONFIG).
 */
export function evaluateSource(
  source: string,
  file: string,
  opts: RestrictedOptions,
  dropped: DroppedValue[] = [],
): JsonObject | undefined {
  const budget = new Budget(file, Date.now() + (opts.timeoutMs ?? 10_000));
  try {
    const body = parse(source, file);
    const interp = new Interpreter(budget, makeBuiltins(budget), makeModules(opts));
    interp.run(body);
    const cfg = interp.globals.vars.get("config");
    if (cfg === undefined) return undefined;
    if (!(cfg instanceof PyDict)) {
      throw new RestrictedError(
        "exception",
        `\`config\` is a ${typeName(cfg)}, not a dict`,
        file,
        budget.line,
      );
    }
    return toJson(cfg, file, [], dropped, 0, new Set()) as JsonObject;
  } catch (e) {
    throw asConfigError(e, file, budget.line);
  }
}

function asConfigError(e: unknown, file: string, line: number): Error {
  if (e instanceof RestrictedError) return e;
  if (e instanceof PyException) {
    return new RestrictedError(
      "exception",
      `the file raised ${e.pyType}: ${e.message}`,
      file,
      e.line || line,
    );
  }
  if (e instanceof RangeError) {
    return new RestrictedError("memory", `evaluation overflowed the stack (${e.message})`, file, line);
  }
  // A bug in the evaluator, not in the file: still a ConfigError, but flagged so tests can catch it.
  return legacyError(
    `the restricted evaluator failed unexpectedly (${e instanceof Error ? e.message : String(e)}); install python3 to evaluate this file`,
    { file, line, kind: "internal", internal: true },
    e,
  );
}

/** Python's json.dumps for a non-str dict key (True -> "true"); other keys become their repr. */
function keyString(k: PyValue): string {
  if (k === null) return "null";
  if (typeof k === "boolean") return k ? "true" : "false";
  if (typeof k === "bigint") return k.toString();
  if (typeof k === "number")
    return Number.isFinite(k) ? floatRepr(k) : Number.isNaN(k) ? "NaN" : k > 0 ? "Infinity" : "-Infinity";
  return repr(k);
}

const DROP = Symbol("drop");

/** Same conversion as the python evaluator's sanitize(): keep JSON, convert tuples/sets, drop the rest. */
function toJson(
  v: PyValue,
  file: string,
  path: string[],
  dropped: DroppedValue[],
  depth: number,
  seen: Set<object>,
): Json | typeof DROP {
  const shown = path.join(".") || "(config)";
  const drop = (type: string, action = "dropped"): typeof DROP => {
    dropped.push({ file, path: shown, type, action });
    return DROP;
  };
  if (depth > 64) return drop("nesting");
  if (v === null || typeof v === "boolean" || typeof v === "string") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "number") return Number.isFinite(v) ? v : drop("float");
  const isContainer =
    v instanceof PyDict || v instanceof PyList || v instanceof PyTuple || v instanceof PySet;
  if (!isContainer) return drop(typeName(v));
  if (seen.has(v)) return drop("cycle");
  const inner = new Set(seen).add(v);
  if (v instanceof PyDict) {
    const out: JsonObject = {};
    for (const [k, x] of v.map.values()) {
      const key = typeof k === "string" ? k : keyString(k);
      if (typeof k !== "string")
        dropped.push({
          file,
          path: [...path, key].join("."),
          type: `${typeName(k)} key`,
          action: "stringified",
        });
      const j = toJson(x, file, [...path, key], dropped, depth + 1, inner);
      if (j !== DROP) setOwn(out, key, j);
    }
    return out;
  }
  let items = v instanceof PySet ? [...v.map.values()] : v.items;
  if (v instanceof PySet) {
    try {
      items = [...items].sort((a, b) => compare(a, b));
    } catch {
      // unsortable: keep insertion order
    }
    dropped.push({ file, path: shown, type: "set", action: "converted to list" });
  }
  const out: Json[] = [];
  items.forEach((x, i) => {
    const j = toJson(x, file, [...path, String(i)], dropped, depth + 1, inner);
    if (j !== DROP) out.push(j);
  });
  return out;
}

/** Evaluate a fedmsg.d directory or single file with the restricted evaluator, merging like fedmsg. */
export function evaluateRestricted(path: string, opts: RestrictedOptions): Evaluation {
  const files = gatherConfigFiles(path);
  const ev: Evaluation = { config: {}, files, withoutConfig: [], origins: {}, dropped: [] };
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (const file of files) {
    let source: string;
    try {
      source = readFileSync(file, "utf8");
    } catch (e) {
      throw legacyError(
        `cannot read the configuration (${(e as Error).message}); fix the path or permissions`,
        { file, kind: "io" },
        e,
      );
    }
    const cfg = evaluateSource(
      source,
      file,
      { ...opts, timeoutMs: Math.max(1, deadline - Date.now()) },
      ev.dropped,
    );
    if (cfg === undefined) {
      ev.withoutConfig.push(file);
      continue;
    }
    recordOrigins(ev.origins, cfg, file);
    recursiveUpdate(ev.config, cfg);
  }
  return ev;
}
