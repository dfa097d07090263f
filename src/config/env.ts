/**
 * Environment overrides: HERALD_ + key path, each segment camelCase -> UPPER_SNAKE, joined by "__",
 * list elements by index. HERALD_OUTBOX__MAX_MESSAGES=5000, HERALD_BROKER__PUBLISH__0__ENDPOINT=...
 * Values are YAML flow scalars, so `true`, `42`, `[a, b]` and `{x: 1}` work.
 *
 * Segments are resolved against the schema (not by guessing camelCase), which is what lets an unknown
 * variable fail with a "did you mean" instead of being silently ignored.
 */
import { yaml } from "./lazy-yaml.js";
import type { ConfigProblem } from "./problems.js";
import { CONFIG_SCHEMA, type SchemaNode } from "./schema.js";
import {
  allowedKeys,
  childSchema,
  dotted,
  envVarFor,
  isArraySchema,
  isPlainObject,
  type KeyPath,
  type Segment,
  suggest,
  upperSnake,
} from "./walk.js";

export const ENV_PREFIX = "HERALD_";

/**
 * HERALD_* variables that are not configuration keys. HERALD_CONFIG names the file. Other parts of
 * herald that read their own HERALD_* variable must add it here, or every CLI start fails on it.
 */
// Variables herald reads that are not configuration keys (the file itself, failpoints for crash tests, the app name
// stamped into message origins, the library logger level before config is loaded).
export const NON_CONFIG_ENV: Set<string> = new Set([
  "HERALD_CONFIG",
  "HERALD_FAILPOINTS",
  "HERALD_APP",
  "HERALD_LOG_LEVEL",
]);

export interface EnvOverride {
  path: KeyPath;
  envVar: string;
  /** The parsed value that was set (to tell which leaves of a whole-list override it really set). */
  value: unknown;
  /**
   * Key paths below `path` (dotted, "" for `path` itself) where the value was merged into the mapping
   * already there: a key missing from `value` there kept what the file or the defaults had.
   */
  merged: ReadonlySet<string>;
}

type Container = Record<string, unknown> | unknown[];

type Step = { key: Segment; schema: SchemaNode } | { error: string; suggestion?: string };

function resolveArraySegment(node: SchemaNode, seg: string, arr: unknown, here: KeyPath): Step {
  if (!/^\d+$/.test(seg))
    return { error: `${dotted(here) || "it"} is a list: use an index (0, 1, ...), not "${seg}"` };
  const index = Number(seg);
  const length = Array.isArray(arr) ? arr.length : 0;
  if (index > length) {
    const next = envVarFor([...here, length]);
    return {
      error: `index ${index} skips items: the list has ${length}; add items in order, starting with ${next}`,
    };
  }
  return node.items === undefined
    ? { error: "list items have no schema" }
    : { key: index, schema: node.items };
}

function resolveObjectSegment(node: SchemaNode, seg: string, obj: unknown, here: KeyPath): Step {
  const keys = allowedKeys(node, obj);
  const known = keys.find((k) => upperSnake(k) === seg);
  if (known !== undefined) {
    const child =
      childSchema(node, known, obj) ?? node.oneOf?.map((b) => b.properties?.[known]).find(Boolean);
    if (child !== undefined) return { key: known, schema: child };
  }
  if (typeof node.additionalProperties === "object") {
    // Free-form maps (legacy.services, security.policy): match an existing key, else take it lower-cased.
    const existing = isPlainObject(obj)
      ? Object.keys(obj).find((k) => upperSnake(k) === seg || k === seg)
      : undefined;
    return { key: existing ?? seg.toLowerCase(), schema: node.additionalProperties };
  }
  if (keys.length === 0) return { error: `${dotted(here)} is a single value and has no sub-keys` };
  const guess = suggest(seg, keys.map(upperSnake));
  const guessKey = keys.find((k) => upperSnake(k) === guess);
  const where = here.length === 0 ? "at the top level" : `under ${dotted(here)}`;
  if (guessKey === undefined) {
    return { error: `unknown key ${seg} ${where}; allowed: ${keys.map(upperSnake).join(", ")}` };
  }
  const target = [...here, guessKey];
  return { error: `unknown key ${seg} ${where}`, suggestion: `${envVarFor(target)} (${dotted(target)})` };
}

function resolveSegment(node: SchemaNode, seg: string, current: unknown, here: KeyPath): Step {
  if (isArraySchema(node)) return resolveArraySegment(node, seg, current, here);
  return resolveObjectSegment(node, seg, current, here);
}

/** Parse an env value as a YAML flow scalar; block-looking text ("a: b") stays a plain string. */
export function parseEnvValue(raw: string): { value: unknown } | { error: string } {
  return plainEnvValue(raw) ?? yamlEnvValue(raw);
}

// Text YAML's core schema reads as itself: a letter or "/" first (so never a number, an indicator or a
// directive), no space (so no comment, no "key: value") and no quote, bracket, "#", "&", "*", "!" or "~".
const PLAIN_STRING = /^[A-Za-z/][A-Za-z0-9_./:@+=,%-]*$/;
// The only such words the core schema reads as something else.
const CORE_WORDS = new Set(["null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"]);
const SMALL_INTEGER = /^(?:0|[1-9][0-9]{0,14})$/;

/**
 * What yamlEnvValue would answer for the common simple values (paths, endpoints, names, small
 * integers, true/false) without loading yaml; undefined for anything else. test/config-env-plain
 * checks it against yamlEnvValue.
 */
export function plainEnvValue(raw: string): { value: unknown } | undefined {
  if (PLAIN_STRING.test(raw)) {
    if (raw === "true" || raw === "false") return { value: raw === "true" };
    return CORE_WORDS.has(raw) ? undefined : { value: raw };
  }
  return SMALL_INTEGER.test(raw) ? { value: Number(raw) } : undefined;
}

/** parseEnvValue by the YAML parser itself. */
export function yamlEnvValue(raw: string): { value: unknown } | { error: string } {
  if (raw.trim() === "") return { value: raw };
  const doc = yaml().parseDocument(raw, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]?.message.split("\n")[0] ?? "syntax error";
    return { error: `cannot parse the value as YAML (${first}); quote it, e.g. '"${raw}"'` };
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    return { error: `cannot read the value: ${err instanceof Error ? err.message : String(err)}` };
  }
  const flow = /^\s*[[{]/.test(raw);
  if (typeof value === "object" && value !== null && !flow) return { value: raw };
  return { value: value ?? null };
}

function setChild(container: Container, key: Segment, value: unknown): void {
  if (Array.isArray(container) && typeof key === "number") container[key] = value;
  else
    Object.defineProperty(container, String(key), {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
}

function getChild(container: Container, key: Segment): unknown {
  if (Array.isArray(container)) return typeof key === "number" ? container[key] : undefined;
  return Object.hasOwn(container, String(key)) ? container[String(key)] : undefined;
}

function applyOne(doc: Record<string, unknown>, envVar: string, raw: string): ConfigProblem | EnvOverride {
  const segs = envVar.slice(ENV_PREFIX.length).split("__");
  const problem = (message: string, path: KeyPath, suggestion?: string): ConfigProblem => ({
    path: dotted(path),
    envVar,
    message: suggestion === undefined ? message : `${message}; did you mean ${suggestion}?`,
    suggestion,
  });
  if (segs.some((s) => s === ""))
    return problem("empty key segment (check for a stray or tripled underscore)", []);
  const parsed = parseEnvValue(raw);
  if ("error" in parsed) return problem(parsed.error, []);
  // Resolve every segment first (reading only), so a bad variable leaves the document untouched.
  let node: SchemaNode = CONFIG_SCHEMA;
  let current: unknown = doc;
  const path: Segment[] = [];
  const schemas: SchemaNode[] = [];
  for (const seg of segs) {
    const step = resolveSegment(node, seg, current, path);
    if ("error" in step) return problem(step.error, [...path, seg], step.suggestion);
    path.push(step.key);
    schemas.push(step.schema);
    node = step.schema;
    current =
      typeof current === "object" && current !== null ? getChild(current as Container, step.key) : undefined;
  }
  let container: Container = doc;
  const merged = new Set<string>();
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      // A copy: later variables patch the document, and `value` must stay what this variable said.
      const own = structuredClone(parsed.value);
      const value = mergeEnvValue(schemas[i], getChild(container, key), own, [], merged);
      setChild(container, key, value);
      return;
    }
    let next = getChild(container, key);
    if (typeof next !== "object" || next === null) {
      next = isArraySchema(schemas[i] ?? {}) ? [] : {};
      setChild(container, key, next);
    }
    container = next as Container;
  });
  return { path, envVar, value: parsed.value, merged };
}

/**
 * Whether a mapping from the environment merges into `current` rather than replacing it: not for the
 * free-form maps (legacy.services, security.policy), whose value is the whole set of names, nor for a
 * list item of another `type` (its keys are another type's).
 */
function mergeable(node: SchemaNode | undefined, current: Record<string, unknown>, value: object): boolean {
  if (node === undefined || typeof node.additionalProperties === "object") return false;
  const tag = node.discriminator?.propertyName;
  if (tag === undefined || !Object.hasOwn(value, tag)) return true;
  return (value as Record<string, unknown>)[tag] === current[tag];
}

/**
 * The value to store for an override: a mapping merges key by key into the mapping already there (file
 * or defaults), as the file merges into the defaults, so HERALD_OUTBOX='{maxMessages: 5}' keeps the
 * other outbox keys; lists and scalars replace. Records in `merged` where it merged.
 */
function mergeEnvValue(
  node: SchemaNode | undefined,
  current: unknown,
  value: unknown,
  rel: KeyPath,
  merged: Set<string>,
): unknown {
  if (!isPlainObject(current) || !isPlainObject(value) || !mergeable(node, current, value)) return value;
  merged.add(dotted(rel));
  for (const key of Object.keys(value)) {
    const child = node === undefined ? undefined : childSchema(node, key, current);
    const next = mergeEnvValue(child, getChild(current, key), value[key], [...rel, key], merged);
    setChild(current, key, next);
  }
  return current;
}

/** Parents before children (HERALD_SINKS before HERALD_SINKS__0__URL), index 2 before index 10. */
function compareEnvNames(a: string, b: string): number {
  const sa = a.split("__");
  const sb = b.split("__");
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const x = sa[i] ?? "";
    const y = sb[i] ?? "";
    if (x === y) continue;
    if (/^\d+$/.test(x) && /^\d+$/.test(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return sa.length - sb.length;
}

/**
 * Apply every HERALD_* override to `doc` (in place). Variables are applied in name order, so a whole
 * list (HERALD_SINKS='[...]') is set before its elements (HERALD_SINKS__0__URL=...) are patched.
 */
export function applyEnvOverrides(
  doc: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
): { overrides: EnvOverride[]; problems: ConfigProblem[] } {
  const overrides: EnvOverride[] = [];
  const problems: ConfigProblem[] = [];
  const names = Object.keys(env)
    .filter((n) => n.startsWith(ENV_PREFIX) && !NON_CONFIG_ENV.has(n))
    .sort(compareEnvNames);
  for (const name of names) {
    const raw = env[name];
    if (raw === undefined) continue;
    const result = applyOne(doc, name, raw);
    if ("message" in result) problems.push(result);
    else overrides.push(result);
  }
  return { overrides, problems };
}
