/**
 * Body schemas: JSON Schema files that a message's `schema` name points at, checked by the broker before
 * it stores the message (`schemas.dir`). fedora-messaging gives every message class a body schema and
 * refuses a body that does not match it; here the schema travels by name, so an app publishes with
 * `schema: "bodhi.update.comment"` (`herald publish --schema`) and the broker looks up
 * `<dir>/bodhi.update.comment@<schemaVersion>.json`, then `<dir>/bodhi.update.comment.json`.
 *
 * The files are read and compiled once, when the broker starts (load.ts): a broken file stops the start
 * with a configuration error naming it, rather than refusing messages later. ajv is loaded only when a
 * directory is configured.
 */
import { join } from "node:path";
import type { ErrorObject } from "ajv";
import { type HeraldError, rejected } from "../errors.js";
import { DEFAULT_SCHEMA, type Message } from "../wire/message.js";
import { type CompiledSchema, loadSchemas } from "./load.js";

export interface SchemaRegistryOptions {
  /** Directory of `<schema>.json` / `<schema>@<version>.json` files. */
  dir: string;
  /** Refuse a message whose schema (other than the default) has no file. */
  strict: boolean;
}

/** Errors shown per refusal: enough to fix the body, not a wall of text. */
const SHOWN_ERRORS = 3;

export class SchemaRegistry {
  private readonly byName: Map<string, CompiledSchema>;

  constructor(private readonly opts: SchemaRegistryOptions) {
    this.byName = loadSchemas(opts.dir);
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

function describe(e: ErrorObject): string {
  // JSON pointer to dotted path, with its escapes undone (~1 is "/", ~0 is "~").
  const path = e.instancePath.replaceAll("/", ".").replaceAll("~1", "/").replaceAll("~0", "~");
  const at = `body${path}`;
  const extra =
    e.keyword === "additionalProperties"
      ? ` (${String((e.params as { additionalProperty?: unknown }).additionalProperty)})`
      : e.keyword === "enum"
        ? ` (${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)})`
        : "";
  return `${at} ${e.message ?? e.keyword}${extra}`;
}
