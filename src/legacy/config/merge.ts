import { setOwn } from "../../util/own.js";
import { isJsonObject, type JsonObject } from "./types.js";

/**
 * fedmsg's `_recursive_update`: keys of `update` win; when both sides hold a dict the dicts are
 * merged the same way, any other value (lists included) is replaced, never concatenated.
 */
export function recursiveUpdate(base: JsonObject, update: JsonObject): JsonObject {
  for (const [key, value] of Object.entries(update)) {
    // hasOwn + defineProperty: a config key named "__proto__" must stay a plain key.
    const old = Object.hasOwn(base, key) ? base[key] : undefined;
    setOwn(base, key, isJsonObject(old) && isJsonObject(value) ? recursiveUpdate(old, value) : value);
  }
  return base;
}

/** Record `key` and `key.subkey` of one file's config as coming from `file` (later files win). */
export function recordOrigins(origins: Record<string, string>, cfg: JsonObject, file: string): void {
  for (const [key, value] of Object.entries(cfg)) {
    origins[key] = file;
    if (isJsonObject(value)) for (const sub of Object.keys(value)) origins[`${key}.${sub}`] = file;
  }
}
