/**
 * loadConfig: find the file, parse it with positions, merge defaults <- file <- environment, validate
 * everything at once, normalise units, compute path defaults, and record where every leaf came from.
 */
import fs from "node:fs";
import path from "node:path";
import { ConfigError } from "../errors.js";
import { computeDefaults, type MachineFacts, machineFacts, STATIC_DEFAULTS } from "./defaults.js";
import { applyEnvOverrides, type EnvOverride } from "./env.js";
import { deepClone, deepMerge, fillItemDefaults, normalizeUnits } from "./normalize.js";
import { type ConfigProblem, configError } from "./problems.js";
import { CONFIG_SCHEMA, type HeraldConfig } from "./schema.js";
import {
  checkLegacyEndpoints,
  checkUniqueNames,
  type Location,
  type Locator,
  validateDocument,
} from "./validate.js";
import { dotted, isPlainObject, type KeyPath, type Segment } from "./walk.js";
import { type NodePosition, parseYaml } from "./yaml-source.js";

export const SYSTEM_CONFIG_PATH = "/etc/herald/herald.yaml";

export interface Provenance {
  source: "default" | "file" | "env";
  file?: string;
  line?: number;
  envVar?: string;
}

export interface LoadedConfig {
  config: HeraldConfig;
  /** Absolute path of the file read, or undefined when running on defaults (+ env). */
  file: string | undefined;
  /** Origin of every leaf, keyed by dotted key path ("outbox.maxMessages", "broker.publish.0.endpoint"). */
  provenance: Map<string, Provenance>;
}

export interface LoadOptions {
  /** `--config PATH`; must exist. */
  configPath?: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Base for a relative configPath/HERALD_CONFIG and for relative paths set by env; defaults to process.cwd(). */
  cwd?: string;
  /** The optional system-wide file; overridable for tests. Defaults to /etc/herald/herald.yaml. */
  systemPath?: string;
  /** Machine facts for computed defaults (uid, home, hostname); overridable for tests. */
  machine?: Partial<MachineFacts>;
}

/** Which file to read: configPath, else $HERALD_CONFIG, else the system file if it exists, else none. */
export function findConfigFile(opts: LoadOptions = {}): string | undefined {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const explicit = opts.configPath ?? (env["HERALD_CONFIG"] || undefined);
  if (explicit !== undefined) {
    const file = path.resolve(cwd, explicit);
    const how = opts.configPath !== undefined ? "--config" : "HERALD_CONFIG";
    if (!fs.existsSync(file)) {
      throw new ConfigError(
        "CONFIG",
        `config file ${file} (from ${how}) does not exist; create it or fix the path`,
        {
          details: { file, problems: [{ path: "", file, message: "file does not exist" }] },
        },
      );
    }
    return file;
  }
  const system = opts.systemPath ?? SYSTEM_CONFIG_PATH;
  return fs.existsSync(system) ? system : undefined;
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new ConfigError(
      "CONFIG",
      `cannot read config file ${file}: ${reason}; check that it is a readable file`,
      {
        cause: err,
        details: { file, problems: [{ path: "", file, message: reason }] },
      },
    );
  }
}

/** Load the configuration (see LoadOptions); throws ConfigError listing every problem. */
export function loadConfig(opts: LoadOptions = {}): LoadedConfig {
  const file = findConfigFile(opts);
  const text = file === undefined ? undefined : readText(file);
  return loadConfigText(text, { ...opts, file });
}

/** Origins of values, answering "where did this key path come from?". */
class Origins {
  constructor(
    private readonly file: string | undefined,
    /** The file's data as parsed (aliases resolved): a leaf is "from the file" iff it is in here. */
    private readonly fileData: unknown,
    private readonly positions: Map<string, NodePosition>,
    private readonly overrides: readonly EnvOverride[],
  ) {}

  /** The deepest env override at or above `keyPath` (later overrides of the same path win). */
  envFor(keyPath: KeyPath, includeBelow = false): EnvOverride | undefined {
    let best: EnvOverride | undefined;
    for (const o of this.overrides) {
      const above =
        o.path.length <= keyPath.length && o.path.every((s, i) => String(s) === String(keyPath[i]));
      const below =
        includeBelow &&
        o.path.length > keyPath.length &&
        keyPath.every((s, i) => String(s) === String(o.path[i]));
      if ((above || below) && (best === undefined || o.path.length >= best.path.length)) best = o;
    }
    return best;
  }

  /** Position in the file: exact, or the nearest ancestor present (an item missing a key, an alias). */
  position(keyPath: KeyPath): NodePosition | undefined {
    for (let n = keyPath.length; n >= 1; n--) {
      const p = this.positions.get(dotted(keyPath.slice(0, n)));
      if (p !== undefined) return p;
    }
    return undefined;
  }

  locate: Locator = (keyPath, at): Location => {
    const env = this.envFor(keyPath);
    if (env !== undefined) return { envVar: env.envVar };
    const p = this.position(keyPath);
    if (p === undefined || this.file === undefined) return this.file === undefined ? {} : { file: this.file };
    const where = at === "key" ? (p.key ?? p.value) : p.value;
    return { file: this.file, line: where.line, column: where.column };
  };

  provenance(keyPath: KeyPath, isArray: boolean): Provenance {
    const env = this.envFor(keyPath, isArray);
    if (env !== undefined) {
      // A whole-list/section override sets only the leaves it spells out; the rest are item defaults.
      const rest = keyPath.slice(env.path.length);
      return hasPath(env.value, rest) ? { source: "env", envVar: env.envVar } : { source: "default" };
    }
    if (this.file === undefined || !hasPath(this.fileData, keyPath)) return { source: "default" };
    const p = this.position(keyPath);
    return p === undefined
      ? { source: "file", file: this.file }
      : { source: "file", file: this.file, line: (p.key ?? p.value).line };
  }
}

function hasPath(value: unknown, rest: KeyPath): boolean {
  let cur = value;
  for (const seg of rest) {
    if (typeof cur !== "object" || cur === null || !Object.hasOwn(cur, String(seg))) return false;
    cur = (cur as Record<string, unknown>)[String(seg)];
  }
  return true;
}

/** Leaves: scalars, null, empty mappings, and lists holding no mappings (shown as one flow list). */
function collectLeaves(
  value: unknown,
  keyPath: Segment[],
  visit: (p: KeyPath, isArray: boolean) => void,
): void {
  if (Array.isArray(value)) {
    if (value.some((v) => isPlainObject(v) || Array.isArray(v))) {
      for (const [i, v] of value.entries()) collectLeaves(v, [...keyPath, i], visit);
    } else visit(keyPath, true);
  } else if (isPlainObject(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) collectLeaves(v, [...keyPath, k], visit);
  } else visit(keyPath, false);
}

/**
 * Sections that neither the file nor an environment variable wrote to: they hold the defaults, and the
 * validator skips them (validator-compile.ts says why).
 */
function untouched(fileData: unknown, overrides: readonly EnvOverride[]): (section: string) => boolean {
  if (fileData !== undefined && !isPlainObject(fileData)) return () => false;
  if (overrides.some((o) => o.path.length === 0)) return () => false;
  const touched = new Set([...Object.keys(fileData ?? {}), ...overrides.map((o) => String(o.path[0]))]);
  return (section) => !touched.has(section);
}

/**
 * Load from YAML text already read (undefined = no file). `file` names it in messages; it is also the
 * base for relative paths written in it. Used by loadConfig and by tests.
 */
export function loadConfigText(
  text: string | undefined,
  opts: LoadOptions & { file?: string } = {},
): LoadedConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.file;
  const parsed = text === undefined ? undefined : parseYaml(text, file ?? "<config>");
  if (parsed !== undefined && parsed.problems.length > 0) throw configError(parsed.problems, file);

  const doc = deepClone(STATIC_DEFAULTS) as unknown as Record<string, unknown>;
  if (parsed?.data !== undefined) deepMerge(doc, parsed.data);
  const { overrides, problems: envProblems } = applyEnvOverrides(doc, env);
  const origins = new Origins(file, parsed?.data, parsed?.positions ?? new Map(), overrides);

  const problems: ConfigProblem[] = [
    ...envProblems,
    ...validateDocument(doc, origins.locate, untouched(parsed?.data, overrides)),
    ...checkUniqueNames(doc, origins.locate),
    ...checkLegacyEndpoints(doc, origins.locate),
  ];
  if (problems.length > 0) throw configError(problems, file);

  fillItemDefaults(doc);
  const fileDir = file === undefined ? cwd : path.resolve(cwd, path.dirname(file));
  normalizeUnits(CONFIG_SCHEMA, doc, [], (p) =>
    origins.provenance(p, false).source === "file" ? fileDir : cwd,
  );
  const config = doc as unknown as HeraldConfig;
  computeDefaults(config, { ...machineFacts(env), ...opts.machine });

  const provenance = new Map<string, Provenance>();
  collectLeaves(config, [], (p, isArray) => provenance.set(dotted(p), origins.provenance(p, isArray)));
  return { config, file, provenance };
}
