/**
 * ajv validation of the merged document, with ajv's errors translated into problems an operator can
 * act on: unknown keys get a "did you mean", wrong types say expected vs got, enums list the choices.
 * The validator is generated at build time (validator-compile.ts) and loaded once per process, lazily
 * (loadConfig runs at every CLI start); without a matching generated one the schema is compiled.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { ErrorObject, ValidateFunction } from "ajv";
import type { ConfigProblem } from "./problems.js";
import type { SchemaNode, UnitSpec } from "./schema.js";
import {
  CONFIG_SECTIONS,
  compileValidator,
  evaluateValidatorScript,
  fingerprintLine,
  TOP_PART,
} from "./validator-compile.js";
import { allowedKeys, dotted, isPlainObject, type KeyPath, type Segment, suggest } from "./walk.js";

/** Where a key path came from, for error messages. */
export interface Location {
  file?: string;
  line?: number;
  column?: number;
  envVar?: string;
}

export type Locator = (path: KeyPath, at: "key" | "value") => Location;

/**
 * A part's generated validator in dist/config/, and V8's code cache for it. Relative to this module
 * through ../config/ so that the same path also works from the CLI bundles in dist/bin/.
 */
export function generatedValidatorFile(part: string): string {
  return `../config/config-validator.${partFileName(part)}.script.js`;
}

export function generatedValidatorCache(part: string): string {
  return `../config/config-validator.${partFileName(part)}.script.cache`;
}

function partFileName(part: string): string {
  return part === TOP_PART ? "top" : part;
}

function readIfThere<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

function generated(part: string): ValidateFunction | undefined {
  const url = new URL(generatedValidatorFile(part), import.meta.url);
  const source = readIfThere(() => readFileSync(url, "utf8")); // absent when tests run src/
  // Stale (schema, options or ajv changed since it was generated): compiling is slower but right.
  if (source === undefined || !source.startsWith(fingerprintLine())) return undefined;
  // V8 checks a code cache against the source's length only: ours starts with the fingerprint line
  // of the source it was made for (the source is a pure function of what the fingerprint covers).
  const cache = readIfThere(() => readFileSync(new URL(generatedValidatorCache(part), import.meta.url)));
  const head = Buffer.from(fingerprintLine());
  const code = cache?.subarray(0, head.length).equals(head) ? cache.subarray(head.length) : undefined;
  return evaluateValidatorScript(source, fileURLToPath(url), code).validate;
}

const loaded = new Map<string, ValidateFunction>();

/** A part's validator (loaded once per process, on first use). */
export function validator(part: string): ValidateFunction {
  let v = loaded.get(part);
  if (v === undefined) {
    v = generated(part) ?? compileValidator(part);
    loaded.set(part, v);
  }
  return v;
}

/** The parts whose validators this process has loaded (for tests). */
export function loadedValidatorParts(): string[] {
  return [...loaded.keys()];
}

function pathOf(instancePath: string): Segment[] {
  if (instancePath === "") return [];
  return instancePath
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

/** A short description of what was found, for "expected X, got Y". */
export function describeValue(v: unknown): string {
  if (v === null) return "null (empty)";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_WORDS: Readonly<Record<string, string>> = {
  object: "a mapping (key: value)",
  array: "a list",
  string: "a string",
  number: "a number",
  integer: "a whole number",
  boolean: "true or false",
  null: "null",
};

const UNIT_WORDS: Readonly<Record<UnitSpec["kind"], string>> = {
  duration: 'a duration (milliseconds, or a string like "500ms", "10m", "1h")',
  size: 'a size (bytes, or a string like "512KiB", "1MiB", "1GiB")',
  path: "a file system path",
};

function expectedType(t: unknown): string {
  const types = Array.isArray(t) ? t : String(t).split(",");
  return types.map((x) => TYPE_WORDS[String(x)] ?? String(x)).join(" or ");
}

type Translated = { path: Segment[]; at: "key" | "value"; message: string; suggestion?: string };

function translateUnknownKey(e: ErrorObject, path: Segment[]): Translated {
  const key = String(e.params["additionalProperty"]);
  const parent = (e.parentSchema ?? {}) as SchemaNode;
  const keys = allowedKeys(parent, e.data);
  const guess = suggest(key, keys);
  const where = path.length === 0 ? "at the top level" : `in ${dotted(path)}`;
  const message =
    guess === undefined
      ? `unknown key "${key}" ${where}; allowed keys: ${keys.join(", ")}`
      : `unknown key "${key}" ${where}; did you mean "${guess}"?`;
  return { path: [...path, key], at: "key", message, suggestion: guess };
}

function translateTag(e: ErrorObject, path: Segment[]): Translated {
  const parent = (e.parentSchema ?? {}) as SchemaNode;
  const types = (parent.oneOf ?? []).map((b) => String(b.properties?.["type"]?.const));
  const value = e.params["tagValue"];
  if (value === undefined)
    return { path, at: "value", message: `missing "type" (one of ${types.join(", ")})` };
  const guess = typeof value === "string" ? suggest(value, types) : undefined;
  const hint = guess === undefined ? "" : `; did you mean "${guess}"?`;
  return {
    path: [...path, "type"],
    at: "value",
    message: `unknown type ${typeof value === "string" ? JSON.stringify(value) : describeValue(value)}; expected one of ${types.join(", ")}${hint}`,
    suggestion: guess,
  };
}

function translate(e: ErrorObject): Translated {
  const path = pathOf(e.instancePath);
  const got = describeValue(e.data);
  switch (e.keyword) {
    case "additionalProperties":
      return translateUnknownKey(e, path);
    case "discriminator":
      return translateTag(e, path);
    case "type": {
      const unit = ((e.parentSchema ?? {}) as SchemaNode)["x-unit"]?.kind;
      const expected = unit === undefined ? expectedType(e.params["type"]) : UNIT_WORDS[unit];
      return { path, at: "value", message: `expected ${expected}, got ${got}` };
    }
    case "enum": {
      const allowed = (e.params["allowedValues"] as unknown[]).map(String);
      const guess = typeof e.data === "string" ? suggest(e.data, allowed) : undefined;
      const hint = guess === undefined ? "" : `; did you mean "${guess}"?`;
      return {
        path,
        at: "value",
        message: `expected one of ${allowed.join(", ")}, got ${got}${hint}`,
        suggestion: guess,
      };
    }
    case "required":
      return { path, at: "value", message: `missing required key "${String(e.params["missingProperty"])}"` };
    case "pattern": {
      const hint =
        ((e.parentSchema ?? {}) as SchemaNode).description ??
        `a string matching ${String(e.params["pattern"])}`;
      return { path, at: "value", message: `expected ${hint}, got ${got}` };
    }
    case "minimum":
    case "maximum":
      return {
        path,
        at: "value",
        message: `must be ${e.keyword === "minimum" ? ">=" : "<="} ${String(e.params["limit"])}, got ${got}`,
      };
    case "minLength":
      return { path, at: "value", message: "must not be empty" };
    default:
      return { path, at: "value", message: e.message ?? `invalid (${e.keyword})` };
  }
}

/**
 * ajv's errors for the document: the top level's, then each section's, in the schema's order. `unchanged`
 * names sections known to hold the defaults, which are valid (the build and a test check that): they are
 * skipped.
 */
export function schemaErrors(
  doc: unknown,
  unchanged: (section: string) => boolean = () => false,
): ErrorObject[] {
  const errors: ErrorObject[] = [];
  const run = (part: string) => {
    const validate = validator(part);
    if (!validate(doc)) errors.push(...(validate.errors ?? []));
  };
  run(TOP_PART);
  if (!isPlainObject(doc)) return errors;
  for (const section of CONFIG_SECTIONS) if (Object.hasOwn(doc, section) && !unchanged(section)) run(section);
  return errors;
}

/** Validate the merged document (see schemaErrors for `unchanged`); returns problems (empty when valid). */
export function validateDocument(
  doc: unknown,
  locate: Locator,
  unchanged?: (section: string) => boolean,
): ConfigProblem[] {
  const seen = new Set<string>();
  const problems: ConfigProblem[] = [];
  for (const e of schemaErrors(doc, unchanged)) {
    const t = translate(e);
    const key = `${dotted(t.path)}\u0000${t.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    problems.push({
      path: dotted(t.path),
      ...locate(t.path, t.at),
      message: t.message,
      suggestion: t.suggestion,
    });
  }
  return problems;
}

/** The in-broker shim's own sink: an output with this name would share its outbox cursor (and pin). */
const RESERVED_OUTPUT = "legacy-shim";

/** Names must be unique among publish sockets + sinks (all are outputs), and among sources. */
export function checkUniqueNames(doc: Record<string, unknown>, locate: Locator): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const broker = isPlainObject(doc["broker"]) ? doc["broker"] : {};
  const groups: Array<Array<[KeyPath, unknown]>> = [
    [...listItems(broker["publish"], ["broker", "publish"]), ...listItems(doc["sinks"], ["sinks"])],
    listItems(doc["sources"], ["sources"]),
  ];
  for (const [i, group] of groups.entries()) {
    const first = new Map<string, KeyPath>();
    if (i === 0) first.set(RESERVED_OUTPUT, ["the in-broker migration shim's own sink"]);
    for (const [path, item] of group) {
      const name = isPlainObject(item) ? item["name"] : undefined;
      if (typeof name !== "string") continue;
      const prev = first.get(name);
      if (prev === undefined) {
        first.set(name, path);
        continue;
      }
      const namePath = [...path, "name"];
      problems.push({
        path: dotted(namePath),
        ...locate(namePath, "value"),
        message: `duplicate name "${name}" (already used by ${dotted(prev)}); give each output a unique name`,
      });
    }
  }
  return problems;
}

export function listItems(list: unknown, path: KeyPath): Array<[KeyPath, unknown]> {
  return Array.isArray(list) ? list.map((item, i) => [[...path, i], item] as [KeyPath, unknown]) : [];
}
