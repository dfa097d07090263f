/**
 * Body schemas: JSON Schema files that a message's `schema` name points at, checked by the broker before
 * it stores the message (`schemas.dir`). fedora-messaging gives every message class a body schema and
 * refuses a body that does not match it; here the schema travels by name, so an app publishes with
 * `schema: "bodhi.update.comment"` (`herald publish --schema`) and the broker looks up
 * `<dir>/bodhi.update.comment@<schemaVersion>.json`, then `<dir>/bodhi.update.comment.json`.
 *
 * The files are read and compiled once, when the broker starts: a broken file stops the start with a
 * configuration error naming it, rather than refusing messages later. ajv is loaded only when a directory
 * is configured (a CommonJS module, required on demand as in config/validator-compile.ts).
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { ErrorObject, ValidateFunction } from "ajv";
import { ConfigError, type HeraldError, rejected } from "../errors.js";
import { DEFAULT_SCHEMA, type Message } from "../wire/message.js";

const require = createRequire(import.meta.url);

export interface SchemaRegistryOptions {
  /** Directory of `<schema>.json` / `<schema>@<version>.json` files. */
  dir: string;
  /** Refuse a message whose schema (other than the default) has no file. */
  strict: boolean;
}

interface Compiled {
  file: string;
  validate: ValidateFunction;
}

/** Errors shown per refusal: enough to fix the body, not a wall of text. */
const SHOWN_ERRORS = 3;

export class SchemaRegistry {
  private readonly byName = new Map<string, Compiled>();

  constructor(private readonly opts: SchemaRegistryOptions) {
    const files = listSchemaFiles(opts.dir);
    if (files.length === 0) return;
    const dialects = new Dialects();
    for (const f of files) this.byName.set(f.slice(0, -".json".length), compile(dialects, join(opts.dir, f)));
  }

  /** How many schema files were loaded. */
  get size(): number {
    return this.byName.size;
  }

  /** The refusal for a body that does not match its schema (INVALID), or undefined when it may be stored. */
  check(m: Message): HeraldError | undefined {
    const c = this.byName.get(`${m.schema}@${m.schemaVersion}`) ?? this.byName.get(m.schema);
    if (c === undefined) {
      if (!this.opts.strict || m.schema === DEFAULT_SCHEMA) return undefined;
      return rejected(
        "INVALID",
        `message ${m.id} names schema ${m.schema} (version ${m.schemaVersion}), which this broker does not know (schemas.strict): add ${join(this.opts.dir, `${m.schema}.json`)} or publish with a known schema`,
        { id: m.id, schema: m.schema },
      );
    }
    if (c.validate(m.body) === true) return undefined;
    const errors = (c.validate.errors ?? []).slice(0, SHOWN_ERRORS).map(describe);
    return rejected(
      "INVALID",
      `body of message ${m.id} does not match schema ${m.schema} (${c.file}): ${errors.join("; ")}; fix the body, or the schema file and restart the broker`,
      { id: m.id, schema: m.schema, file: c.file, errors },
    );
  }
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

type AjvInstance = { compile(schema: unknown): ValidateFunction };
type AjvClass = new (o: object) => AjvInstance;

/**
 * One ajv per dialect: a file that names draft-07 (or -06) in `$schema` gets ajv's draft-07 class, any
 * other the draft 2020-12 one (which does not know draft-07's meta-schema).
 */
class Dialects {
  private readonly made = new Map<string, AjvInstance>();

  for(schema: unknown): AjvInstance {
    const uri = (schema as { $schema?: unknown } | null)?.$schema;
    const old = typeof uri === "string" && /draft-0[67]/.test(uri);
    const key = old ? "07" : "2020";
    let ajv = this.made.get(key);
    if (ajv === undefined) {
      const Cls = (require(old ? "ajv" : "ajv/dist/2020") as { default: AjvClass }).default;
      ajv = new Cls({ allErrors: true, strict: false });
      this.made.set(key, ajv);
    }
    return ajv;
  }
}

function compile(dialects: Dialects, file: string): Compiled {
  let schema: unknown;
  try {
    schema = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new ConfigError("CONFIG", `schema file ${file} is not readable JSON: ${(err as Error).message}`, {
      cause: err,
      details: { file },
    });
  }
  try {
    return { file, validate: dialects.for(schema).compile(schema) };
  } catch (err) {
    throw new ConfigError(
      "CONFIG",
      `schema file ${file} is not a valid JSON Schema: ${(err as Error).message}`,
      {
        cause: err,
        details: { file },
      },
    );
  }
}

function describe(e: ErrorObject): string {
  const at = e.instancePath === "" ? "body" : `body${e.instancePath.replaceAll("/", ".")}`;
  const extra =
    e.keyword === "additionalProperties"
      ? ` (${String((e.params as { additionalProperty?: unknown }).additionalProperty)})`
      : e.keyword === "enum"
        ? ` (${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)})`
        : "";
  return `${at} ${e.message ?? e.keyword}${extra}`;
}
