/**
 * The `x-unit` keyword's check, apart from validate.ts so that the precompiled validator (which calls
 * it) can be given it without loading ajv itself.
 */
import type { SchemaValidateFunction } from "ajv";
import type { UnitSpec } from "./schema.js";
import { formatDuration, formatSize, parseDuration, parseSize } from "./units.js";

export const checkUnit: SchemaValidateFunction = (spec: UnitSpec, data: unknown): boolean => {
  if (spec.kind === "path") return true;
  try {
    const n = spec.kind === "duration" ? parseDuration(data) : parseSize(data);
    const min = spec.min ?? 0;
    if (n < min) {
      const shown = spec.kind === "duration" ? formatDuration(min) : formatSize(min);
      checkUnit.errors = [{ keyword: "x-unit", message: `must be at least ${shown}`, params: {} }];
      return false;
    }
    return true;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    checkUnit.errors = [{ keyword: "x-unit", message, params: {} }];
    return false;
  }
};
