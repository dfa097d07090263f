/**
 * `herald config show` and `herald config check`: the effective configuration with the origin of every
 * value, and a yes/no validation of a file.
 */
import { Document, isMap, isScalar, isSeq } from "yaml";
import { ConfigError, toHeraldError } from "../errors.js";
import { type LoadedConfig, type LoadOptions, loadConfig, type Provenance } from "./load.js";
import { shortFile } from "./problems.js";
import { CONFIG_SCHEMA, type HeraldConfig, type SchemaNode } from "./schema.js";
import { formatDuration, formatSize } from "./units.js";
import { allowedKeys, childSchema, dotted, isPlainObject, type KeyPath } from "./walk.js";

export interface RenderOptions {
  format: "yaml" | "json";
  /** Show passwords in AMQP URLs instead of "***". */
  showSecrets?: boolean;
}

/** "default", "herald.yaml:12" or "env HERALD_OUTBOX__MAX_MESSAGES". */
export function provenanceLabel(p: Provenance | undefined): string {
  if (p === undefined || p.source === "default") return "default";
  if (p.source === "env") return `env ${p.envVar ?? "?"}`;
  const name = p.file === undefined ? "file" : shortFile(p.file);
  return p.line === undefined ? name : `${name}:${p.line}`;
}

const URL_PASSWORD = /^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)([^@/]+)(@)/i;

/** amqp://user:secret@host -> amqp://user:***@host */
export function maskSecrets(value: string): string {
  return value.replace(URL_PASSWORD, "$1***$3");
}

/** Copy of the config for display: units back to "10m"/"1GiB", secrets masked. */
function displayValue(
  node: SchemaNode | undefined,
  data: unknown,
  showSecrets: boolean,
  human: boolean,
): unknown {
  const unit = node?.["x-unit"];
  if (human && unit !== undefined && typeof data === "number") {
    if (unit.kind === "duration") return formatDuration(data);
    if (unit.kind === "size") return formatSize(data);
  }
  if (typeof data === "string") return showSecrets ? data : maskSecrets(data);
  if (Array.isArray(data)) return data.map((v) => displayValue(node?.items, v, showSecrets, human));
  if (isPlainObject(data)) {
    const out: Record<string, unknown> = {};
    // Schema order (paths, broker, outbox...; name, type first in items), not merge order.
    const order = node === undefined ? [] : allowedKeys(node, data);
    const keys = [
      ...order.filter((k) => Object.hasOwn(data, k)),
      ...Object.keys(data).filter((k) => !order.includes(k)),
    ];
    for (const k of keys) {
      const v = data[k];
      const child = node === undefined ? undefined : childSchema(node, k, data);
      out[k] = displayValue(child, v, showSecrets, human);
    }
    return out;
  }
  return data;
}

function annotate(node: unknown, path: KeyPath, provenance: Map<string, Provenance>): void {
  const label = (p: KeyPath): string | undefined => {
    const key = dotted(p);
    return provenance.has(key) ? ` ${provenanceLabel(provenance.get(key))}` : undefined;
  };
  const visitChild = (child: unknown, childPath: KeyPath): void => {
    const comment = label(childPath);
    if (comment !== undefined && (isScalar(child) || isSeq(child) || isMap(child))) {
      if (isSeq(child) || isMap(child)) child.flow = true;
      child.comment = comment;
      return;
    }
    annotate(child, childPath, provenance);
  };
  if (isMap(node)) {
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      visitChild(pair.value, [...path, key]);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      visitChild(item, [...path, i]);
    });
  }
}

/** The effective configuration as YAML (each leaf commented with its origin) or as JSON (ms/bytes). */
export function renderConfig(loaded: LoadedConfig, opts: RenderOptions = { format: "yaml" }): string {
  const showSecrets = opts.showSecrets ?? false;
  if (opts.format === "json") {
    return `${JSON.stringify(displayValue(CONFIG_SCHEMA, loaded.config, showSecrets, false), null, 2)}\n`;
  }
  const doc = new Document(displayValue(CONFIG_SCHEMA, loaded.config, showSecrets, true));
  const source = loaded.file === undefined ? "no config file (defaults + environment)" : loaded.file;
  doc.commentBefore = ` Effective herald configuration. Source: ${source}`;
  annotate(doc.contents, [], loaded.provenance);
  return doc.toString({ lineWidth: 0 });
}

export type CheckResult =
  | { ok: true; config: HeraldConfig; loaded: LoadedConfig }
  | { ok: false; error: ConfigError };

/**
 * `herald config check [FILE]`: validate FILE (or the file the normal lookup finds: HERALD_CONFIG, the
 * system file if it exists, else none) together with the environment overrides. `opts` as loadConfig's
 * (e.g. configPathFrom to name where FILE came from). Never throws for a bad configuration.
 */
export function checkConfigFile(
  file?: string,
  env: NodeJS.ProcessEnv = process.env,
  opts: Omit<LoadOptions, "configPath" | "env"> = {},
): CheckResult {
  try {
    const loaded = loadConfig({ ...opts, ...(file === undefined ? {} : { configPath: file }), env });
    return { ok: true, config: loaded.config, loaded };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, error: err };
    const wrapped = toHeraldError(err, "CONFIG");
    return { ok: false, error: new ConfigError("CONFIG", wrapped.message, { cause: err }) };
  }
}
