/**
 * The `x-unit` keyword's check, apart from validate.ts so that the precompiled validator (which calls
 * it) can be given it without loading ajv itself.
 */
import type { SchemaValidateFunction } from "ajv";
import type { UnitSpec } from "./schema.js";
import { formatDuration, formatSize, parseDuration, parseSize } from "./units.js";

/** Why the normalised value is out of the spec's range, or undefined when it is in it. */
function rangeProblem(spec: UnitSpec, n: number): string | undefined {
  const shown = (v: number) => (spec.kind === "duration" ? formatDuration(v) : formatSize(v));
  const min = spec.min ?? 0;
  if (n < min) return `must be at least ${shown(min)}`;
  if (spec.max !== undefined && n > spec.max) {
    const why = spec.maxWhy === undefined ? "" : ` (${spec.maxWhy})`;
    return `must be at most ${shown(spec.max)}${why}, got ${shown(n)}`;
  }
  return undefined;
}

export const checkUnit: SchemaValidateFunction = (spec: UnitSpec, data: unknown): boolean => {
  if (spec.kind === "path") return true;
  try {
    const n = spec.kind === "duration" ? parseDuration(data) : parseSize(data);
    const problem = rangeProblem(spec, n);
    if (problem !== undefined) {
      checkUnit.errors = [{ keyword: "x-unit", message: problem, params: {} }];
      return false;
    }
    return true;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    checkUnit.errors = [{ keyword: "x-unit", message, params: {} }];
    return false;
  }
};
