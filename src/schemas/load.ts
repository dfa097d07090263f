/**
 * Reading and compiling the body schema files of `schemas.dir` (registry.ts uses the result). Every file
 * is read and registered first, then compiled, so a `$ref` to another file's `$id` resolves whatever the
 * files' order. Anything that would make checking a message unsafe is refused here, at start, with the
 * file named: asynchronous schemas (ajv would answer a Promise), and `uniqueItems` over arrays whose items
 * are not plain scalars (ajv compares every pair: a 229 KB body took 5.8 s, a stall of the whole broker).
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { ValidateFunction } from "ajv";
import { ConfigError } from "../errors.js";

const require = createRequire(import.meta.url);

export interface CompiledSchema {
  file: string;
  validate: ValidateFunction;
}

type AjvInstance = {
  addSchema(schema: unknown, key: string): unknown;
  getSchema(key: string): ValidateFunction | undefined;
  addMetaSchema(schema: object): unknown;
};
type AjvClass = new (o: object) => AjvInstance;

/** `format` is an annotation here (no format plugin): said in the docs, and no console warning per file. */
const AJV_OPTIONS = { allErrors: true, strict: false, validateFormats: false, logger: false };

/** The files of `dir` by schema name (`koji.build`, `koji.build@2`), compiled. */
export function loadSchemas(dir: string): Map<string, CompiledSchema> {
  const files = listSchemaFiles(dir);
  const out = new Map<string, CompiledSchema>();
  if (files.length === 0) return out;
  const dialects = new Dialects();
  const parsed = files.map((f) => ({ name: f.slice(0, -".json".length), file: join(dir, f) }));
  const added = parsed.map((p) => {
    const schema = readSchema(p.file);
    const ajv = dialects.for(schema, p.file);
    guard(() => ajv.addSchema(schema, p.file), p.file);
    return { ...p, ajv };
  });
  for (const a of added) {
    const validate = guard(() => a.ajv.getSchema(a.file), a.file);
    if (validate === undefined) throw invalid(a.file, "ajv could not compile it");
    if ((validate as { $async?: unknown }).$async === true)
      throw invalid(
        a.file,
        "it is asynchronous ($async): the broker checks bodies synchronously; remove $async",
      );
    out.set(a.name, { file: a.file, validate });
  }
  return out;
}

function listSchemaFiles(dir: string): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith(".json") && !f.startsWith("."))
      .sort();
  } catch (err) {
    throw new ConfigError(
      "CONFIG",
      `schemas.dir ${dir} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): create it, fix its permissions, or set schemas.dir to null`,
      { cause: err, details: { file: dir } },
    );
  }
}

function readSchema(file: string): unknown {
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError("CONFIG", `schema file ${file} is not readable JSON: ${(err as Error).message}`, {
      cause: err,
      details: { file },
    });
  }
  const slow = quadraticUniqueItems(schema, "");
  if (slow !== undefined)
    throw invalid(
      file,
      `uniqueItems at ${slow || "the top"} applies to items that are not strings, numbers or booleans: ajv compares every pair, so one large body would stall the broker; drop it or restrict the items to a scalar type`,
    );
  return schema;
}

const SCALARS = new Set(["string", "number", "integer", "boolean", "null"]);

/** Where a `uniqueItems: true` sits whose items are not declared scalar, if anywhere (a JSON pointer). */
function quadraticUniqueItems(node: unknown, at: string): string | undefined {
  if (typeof node !== "object" || node === null) return undefined;
  if (Array.isArray(node)) {
    for (const [i, v] of node.entries()) {
      const found = quadraticUniqueItems(v, `${at}/${i}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  const o = node as Record<string, unknown>;
  if (o["uniqueItems"] === true && !scalarItems(o["items"])) return at;
  for (const [k, v] of Object.entries(o)) {
    const found = quadraticUniqueItems(v, `${at}/${k}`);
    if (found !== undefined) return found;
  }
  return undefined;
}

function scalarItems(items: unknown): boolean {
  if (typeof items !== "object" || items === null) return false;
  const t = (items as { type?: unknown; enum?: unknown }).type;
  if (typeof t === "string") return SCALARS.has(t);
  if (Array.isArray(t)) return t.every((x) => typeof x === "string" && SCALARS.has(x));
  return false;
}

/**
 * One ajv per dialect: `$schema` naming draft-07 or draft-06 gets ajv's draft-07 class (with draft-06's
 * meta-schema added), none or 2019-09/2020-12 the draft 2020-12 class; draft-04 (older fedora-messaging
 * schemas) is refused with what to change, since ajv 8 does not read it.
 */
class Dialects {
  private readonly made = new Map<string, AjvInstance>();

  for(schema: unknown, file: string): AjvInstance {
    const uri = (schema as { $schema?: unknown } | null)?.$schema;
    const s = typeof uri === "string" ? uri : "";
    if (/draft-0[1-4]/.test(s))
      throw invalid(
        file,
        `its $schema is ${s}: draft-04 and older are not supported; use draft-07 or 2020-12 (mostly: exclusiveMinimum/Maximum become numbers, id becomes $id)`,
      );
    const old = /draft-0[67]/.test(s);
    const key = old ? "07" : "2020";
    let ajv = this.made.get(key);
    if (ajv === undefined) {
      const Cls = (require(old ? "ajv" : "ajv/dist/2020") as { default: AjvClass }).default;
      ajv = new Cls(AJV_OPTIONS);
      if (old) ajv.addMetaSchema(require("ajv/dist/refs/json-schema-draft-06.json") as object);
      this.made.set(key, ajv);
    }
    return ajv;
  }
}

function guard<T>(fn: () => T, file: string): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw invalid(file, (err as Error).message);
  }
}

function invalid(file: string, why: string): ConfigError {
  return new ConfigError("CONFIG", `schema file ${file} is not a valid JSON Schema for herald: ${why}`, {
    details: { file },
  });
}
