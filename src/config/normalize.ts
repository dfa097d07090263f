/**
 * Turn the validated raw document into the resolved shape: deep-merge, item defaults per `type`,
 * durations -> ms, sizes -> bytes, relative paths -> absolute. Runs only on a document ajv accepted.
 */
import path from "node:path";
import { setOwn } from "../util/own.js";
import {
  PUBLISH_ITEM_DEFAULTS,
  SERVICE_DEFAULTS,
  SINK_ITEM_DEFAULTS,
  SOURCE_ITEM_DEFAULTS,
  TLS_DEFAULTS,
} from "./defaults.js";
import { isZ85KeyValue, type SchemaNode, type UnitSpec } from "./schema.js";
import { parseDuration, parseSize } from "./units.js";
import { childSchema, isPlainObject, type KeyPath } from "./walk.js";

export function deepClone<T>(value: T): T {
  return structuredClone(value);
}

/**
 * Merge `override` into `base` in place. Mappings merge key by key; lists and scalars replace. A null
 * where the base has a mapping or a list (a section or list whose entries are all commented out, so
 * YAML reads it as null) keeps the base.
 */
export function deepMerge(base: Record<string, unknown>, override: Record<string, unknown>): void {
  for (const key of Object.keys(override)) {
    const value = override[key];
    const current = Object.hasOwn(base, key) ? base[key] : undefined;
    if ((isPlainObject(current) || Array.isArray(current)) && value === null) continue;
    if (isPlainObject(current) && isPlainObject(value)) deepMerge(current, value);
    else setOwn(base, key, value);
  }
}

function withDefaults(defaults: object | undefined, item: unknown): unknown {
  if (!isPlainObject(item) || defaults === undefined) return item;
  return { ...defaults, ...item };
}

function mapList(list: unknown, fn: (item: unknown) => unknown): unknown {
  return Array.isArray(list) ? list.map(fn) : list;
}

function typeOf(item: unknown): string {
  return isPlainObject(item) ? String(item["type"]) : "";
}

/**
 * `bodhi.app01:` with nothing under it names a legacy service with every default (null means "default"
 * throughout this configuration). Runs before validation, which would refuse the null.
 */
export function emptyServiceEntries(doc: Record<string, unknown>): void {
  const legacy = doc["legacy"];
  if (!isPlainObject(legacy) || !isPlainObject(legacy["services"])) return;
  const services = legacy["services"];
  for (const name of Object.keys(services)) if (services[name] === null) setOwn(services, name, {});
}

/** Fill per-item defaults in lists and maps (publish sockets, sinks, sources, legacy services). */
export function fillItemDefaults(doc: Record<string, unknown>): void {
  const broker = doc["broker"];
  if (isPlainObject(broker)) {
    broker["publish"] = mapList(broker["publish"], (p) => withDefaults(PUBLISH_ITEM_DEFAULTS, p));
  }
  const sinkDefaults: Record<string, object> = SINK_ITEM_DEFAULTS;
  doc["sinks"] = mapList(doc["sinks"], (s) => {
    const filled = withDefaults(sinkDefaults[typeOf(s)], s);
    if (isPlainObject(filled) && isPlainObject(filled["tls"]))
      filled["tls"] = { ...TLS_DEFAULTS, ...filled["tls"] };
    return filled;
  });
  const sourceDefaults: Record<string, object> = SOURCE_ITEM_DEFAULTS;
  doc["sources"] = mapList(doc["sources"], (s) => withDefaults(sourceDefaults[typeOf(s)], s));
  const legacy = doc["legacy"];
  if (isPlainObject(legacy) && isPlainObject(legacy["services"])) {
    const services: Record<string, unknown> = {};
    for (const [name, svc] of Object.entries(legacy["services"])) {
      setOwn(services, name, withDefaults(SERVICE_DEFAULTS, svc));
    }
    legacy["services"] = services;
  }
}

/** Base directory for a relative path found at `keyPath` (the config file's directory, or cwd). */
export type PathBase = (keyPath: KeyPath) => string;

/** A string that names a file: any, except the key itself where a key may stand instead (serverKey). */
function isPath(unit: UnitSpec, data: unknown): data is string {
  return typeof data === "string" && !(unit.orZ85Key === true && isZ85KeyValue(data));
}

/** Convert every `x-unit` leaf in place: durations -> ms, sizes -> bytes, paths -> absolute. */
export function normalizeUnits(node: SchemaNode, data: unknown, keyPath: KeyPath, base: PathBase): unknown {
  const unit = node["x-unit"];
  if (unit !== undefined) {
    if (unit.kind === "duration") return parseDuration(data);
    if (unit.kind === "size") return parseSize(data);
    return isPath(unit, data) ? path.resolve(base(keyPath), data) : data;
  }
  if (Array.isArray(data)) {
    return node.items === undefined
      ? data
      : data.map((item, i) => normalizeUnits(node.items as SchemaNode, item, [...keyPath, i], base));
  }
  if (isPlainObject(data)) {
    for (const key of Object.keys(data)) {
      const child = childSchema(node, key, data);
      if (child !== undefined) setOwn(data, key, normalizeUnits(child, data[key], [...keyPath, key], base));
    }
  }
  return data;
}
