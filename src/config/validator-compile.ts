/**
 * The config schema's ajv validators, two ways: compiled at run time (ajv's compile takes tens of ms,
 * paid at every CLI start), or generated ahead of time by `npm run build`
 * (scripts/build-config-validator.mjs writes dist/config/config-validator.PART.script.js, plus V8's code
 * cache for each) and evaluated as plain code. Both come from the same schema and options; a generated
 * script starts with a fingerprint of them and is ignored when it does not match (e.g. dist compiled by
 * tsc alone after a schema change).
 *
 * One validator per part (VALIDATOR_PARTS): the top level's keys, and each section on its own. A
 * section nobody changed holds the defaults, which are valid (the build checks it), so loadConfig runs
 * only the parts a file or the environment touched: the whole generated code is 160 KB, and reading
 * and evaluating it was ~8 ms of a one-shot command that sets a few paths by environment.
 *
 * ajv is CommonJS and loaded with require() on demand: validate.ts is on every CLI start's path and
 * loadConfig is synchronous.
 */
import { createRequire } from "node:module";
import vm from "node:vm";
import type * as AjvModule from "ajv";
import type { Options, ValidateFunction } from "ajv";
import { CONFIG_SCHEMA, type SchemaNode } from "./schema.js";
import { checkUnit } from "./unit-keyword.js";

const require = createRequire(import.meta.url);

// optimize: false: compiled at run time once per process, a faster compile beats a faster check.
const AJV_OPTIONS: Options = {
  allErrors: true,
  verbose: true,
  discriminator: true,
  strict: true,
  allowUnionTypes: true,
  code: { optimize: false },
};

/**
 * What the generated validator must have been generated from. The hash only tells a stale generated file
 * from a current one, so a 2 x 32-bit FNV-1a in JavaScript does: sha256 would load node:crypto at every
 * CLI start (util/node-crypto.ts).
 */
export function validatorFingerprint(): string {
  const ajvVersion = (require("ajv/package.json") as { version: string }).version;
  const parts = VALIDATOR_PARTS.map((p) => [p, partSchema(p)]);
  return fnv1a64(JSON.stringify({ ajvVersion, options: AJV_OPTIONS, parts }));
}

/** The top level of the document (its keys, each section's presence); named so that no section can be. */
export const TOP_PART = "(top)";

/** Not a part: the whole schema in one validator, which the parts together must agree with (tests). */
export const WHOLE = "(whole)";

/** The config's sections: the schema's top-level keys, in its order. */
export const CONFIG_SECTIONS: readonly string[] = Object.keys(CONFIG_SCHEMA.properties ?? {});

/** The parts validated separately: the top level, then every section. */
export const VALIDATOR_PARTS: readonly string[] = [TOP_PART, ...CONFIG_SECTIONS];

/**
 * A part's schema. A section's is the root with only that property: validating the whole document with
 * it checks that section alone, and ajv's errors keep the whole schema's instance and schema paths.
 */
export function partSchema(part: string): SchemaNode {
  const { properties = {}, ...root } = CONFIG_SCHEMA;
  if (part === TOP_PART)
    return { ...root, properties: Object.fromEntries(CONFIG_SECTIONS.map((k) => [k, {}])) };
  const section = properties[part];
  if (section === undefined) throw new Error(`no config section '${part}' in the schema`);
  return { type: "object", properties: { [part]: section } };
}

/** FNV-1a over the UTF-16 code units, two lanes with different offsets; 16 hex digits. */
function fnv1a64(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (a >>> 15);
  }
  const hex = (n: number) => (n >>> 0).toString(16).padStart(8, "0");
  return hex(a) + hex(b);
}

function compile(part: string, source: boolean): { ajv: AjvModule.Ajv; validate: ValidateFunction } {
  const { Ajv } = require("ajv") as typeof AjvModule;
  const ajv = new Ajv({ ...AJV_OPTIONS, code: { ...AJV_OPTIONS.code, source } });
  ajv.addKeyword({
    keyword: "x-unit",
    type: ["string", "number"],
    schemaType: "object",
    errors: true,
    validate: checkUnit,
  });
  return { ajv, validate: ajv.compile(part === WHOLE ? CONFIG_SCHEMA : partSchema(part)) };
}

/** Compile a part's schema now (the fallback when no matching generated validator is there). */
export function compileValidator(part: string): ValidateFunction {
  return compile(part, false).validate;
}

/**
 * The fingerprint as computed when the CLI bundles were built (bundle-cli.mjs defines it; they carry
 * the schema and options it covers): computing it reads ajv's package.json, a package lookup, and
 * serialises the schema, ~3 ms of a one-shot command. Undefined elsewhere (dist/ as tsc writes it).
 */
declare const __HERALD_VALIDATOR_FINGERPRINT: string | undefined;

let line: string | undefined;

/**
 * First line of the generated script; anything else means it was generated from something else.
 * Computed once per process: it hashes the whole schema, on every CLI start's path.
 */
export function fingerprintLine(): string {
  const built =
    typeof __HERALD_VALIDATOR_FINGERPRINT === "string" ? __HERALD_VALIDATOR_FINGERPRINT : undefined;
  line ??= `// fingerprint ${built ?? validatorFingerprint()}\n`;
  return line;
}

/**
 * The generated validator: a script (for node:vm, not a module) whose value is
 * `create(require, checkUnit)`. The `x-unit` check is a function ajv cannot print, so the generated
 * code takes it as a parameter.
 */
export function standaloneValidatorSource(part: string): string {
  const { ajv, validate } = compile(part, true);
  const { _ } = require("ajv") as typeof AjvModule;
  const values = validate.source?.scopeValues["keyword"];
  let patched = 0;
  for (const name of values ?? []) {
    if (name.value?.ref !== checkUnit) continue;
    // ajv writes `const keyword0 = <code>;`: point it at the parameter.
    name.value.code = _`checkUnit`;
    patched++;
  }
  // A part without durations or sizes (the top level) has no x-unit keyword to point at the parameter.
  if (patched === 0 && JSON.stringify(partSchema(part)).includes('"x-unit"'))
    throw new Error("generated validator: the x-unit keyword was not found in ajv's scope");
  // module.exports of ajv/dist/standalone is the function itself.
  const standaloneCode = require("ajv/dist/standalone") as (
    ajv: AjvModule.Ajv,
    v: ValidateFunction,
  ) => string;
  const body = standaloneCode(ajv, validate);
  // ajv's run-time code has `self` (the Ajv instance); here it only appears as the `this` of keyword
  // calls, which checkUnit (an arrow function) ignores.
  if (body.split(/\bself\b/).length !== body.split(".call(self,").length)
    throw new Error("generated validator: uses ajv's `self` beyond keyword calls");
  return [
    fingerprintLine().trimEnd(),
    "// Generated by scripts/build-config-validator.mjs from src/config/schema.ts: do not edit.",
    "(function create(require, checkUnit) {",
    '"use strict";',
    "const module = { exports: {} };",
    "const self = undefined;",
    body,
    "return module.exports;",
    "})",
    "",
  ].join("\n");
}

/**
 * Evaluate a generated validator script; `cachedData` is V8's code cache for it (rejected by V8, and
 * then simply not used, when it does not fit this node or this source). `filename` is where ajv's
 * runtime helpers are required from. The script is returned for `createCachedData()`.
 */
export function evaluateValidatorScript(
  source: string,
  filename: string,
  cachedData?: Buffer,
): { validate: ValidateFunction; script: vm.Script } {
  const script = new vm.Script(source, { filename, ...(cachedData ? { cachedData } : {}) });
  const create = script.runInThisContext() as (
    req: NodeJS.Require,
    check: typeof checkUnit,
  ) => ValidateFunction;
  return { validate: create(createRequire(filename), checkUnit), script };
}
