/**
 * Configuration problems are collected, not thrown one by one, so an operator sees every mistake in
 * one run. Each names where it came from (file:line:column, or the env var) and the key path.
 */
import path from "node:path";
import { ConfigError } from "../errors.js";

export interface ConfigProblem {
  /** Dotted key path, e.g. "outbox.maxMessages"; "" for the whole document. */
  path: string;
  file?: string;
  line?: number;
  column?: number;
  /** Set when the offending value came from an environment variable. */
  envVar?: string;
  message: string;
  /** The allowed key or value the user probably meant. */
  suggestion?: string;
}

/** Where a problem is, in the words an operator searches for. */
export function problemLocation(p: ConfigProblem): string {
  if (p.envVar !== undefined) return `env ${p.envVar}`;
  if (p.file !== undefined) {
    if (p.line === undefined) return p.file;
    return p.column === undefined ? `${p.file}:${p.line}` : `${p.file}:${p.line}:${p.column}`;
  }
  return "defaults";
}

export function formatProblem(p: ConfigProblem): string {
  const where = problemLocation(p);
  const key = p.path === "" ? "" : ` ${p.path}:`;
  return `${where}:${key} ${p.message}`;
}

function sortKey(p: ConfigProblem): [number, number, number] {
  const envRank = p.envVar === undefined ? 0 : 1;
  return [envRank, p.line ?? 0, p.column ?? 0];
}

function compareProblems(a: ConfigProblem, b: ConfigProblem): number {
  const ka = sortKey(a);
  const kb = sortKey(b);
  return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2] || a.path.localeCompare(b.path);
}

/** One ConfigError listing every problem on its own line; `details.problems` has them structured. */
export function configError(problems: readonly ConfigProblem[], file: string | undefined): ConfigError {
  const sorted = [...problems].sort(compareProblems);
  const source = file === undefined ? "herald configuration" : `herald configuration ${file}`;
  const count = sorted.length === 1 ? "1 problem" : `${sorted.length} problems`;
  const fix =
    "fix the keys listed (see docs/configuration.md or `herald config show` for the effective values)";
  const lines = sorted.map((p) => `  - ${formatProblem(p)}`);
  return new ConfigError("CONFIG", `${source} is invalid (${count}); ${fix}:\n${lines.join("\n")}`, {
    details: { file, problems: sorted },
  });
}

/** The short name shown in `config show` comments: herald.yaml:12. */
export function shortFile(file: string): string {
  return path.basename(file);
}
