/**
 * loadConfig: find the file, parse it with positions, merge defaults <- file <- environment, validate
 * everything at once, normalise units, compute path defaults, and record where every leaf came from.
 */
import fs from "node:fs";
import path from "node:path";
import { ConfigError } from "../errors.js";
import { checkCrossKeys, checkEndpoints } from "./checks.js";
import { computeDefaults, type MachineFacts, machineFacts, STATIC_DEFAULTS } from "./defaults.js";
import { applyEnvOverrides, type EnvOverride } from "./env.js";
import { deepClone, deepMerge, emptyServiceEntries, fillItemDefaults, normalizeUnits } from "./normalize.js";
import { type ConfigProblem, configError } from "./problems.js";
import { CONFIG_SCHEMA, type HeraldConfig } from "./schema.js";
import { checkUniqueNames, type Location, type Locator, validateDocument } from "./validate.js";
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
  /** Where configPath came from, for messages: "--config" unless said (e.g. "the command line"). */
  configPathFrom?: string;
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
    const how = opts.configPath !== undefined ? (opts.configPathFrom ?? "--config") : "HERALD_CONFIG";
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

  /**
   * The env override that decided the value at `keyPath`: the deepest (then the latest) at or above it
   * that spelled the value out, or that replaced what was there (a list, a scalar, a free-form map) and
   * so left it at its default (`spelled: false`). An override whose mapping was merged into the file's
   * and defaults' (see env.ts) and does not name the key leaves it to the next one, then to the file.
   * With `includeBelow`, an override below `keyPath` (an element of a list shown whole) counts too.
   */
  envFor(keyPath: KeyPath, includeBelow = false): { override: EnvOverride; spelled: boolean } | undefined {
    const starts = (p: KeyPath, prefix: KeyPath) =>
      prefix.length <= p.length && prefix.every((s, i) => String(s) === String(p[i]));
    if (includeBelow) {
      const below = this.overrides.filter((o) => o.path.length > keyPath.length && starts(o.path, keyPath));
      const last = below[below.length - 1];
      if (last !== undefined) return { override: last, spelled: true };
    }
    const above = this.overrides
      .map((o, order) => ({ o, order }))
      .filter(({ o }) => starts(keyPath, o.path))
      .sort((a, b) => b.o.path.length - a.o.path.length || b.order - a.order);
    for (const { o } of above) {
      const verdict = spelledOut(o, keyPath.slice(o.path.length));
      if (verdict !== "merged") return { override: o, spelled: verdict === "set" };
    }
    return undefined;
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
    if (env !== undefined) return { envVar: env.override.envVar };
    // A node only an environment variable made (HERALD_BROKER__PUBLISH__1__ENDPOINT past the file's one
    // item): its problems are that variable's, not the nearest ancestor's line in the file.
    const made = this.positions.has(dotted(keyPath)) ? undefined : this.envFor(keyPath, true);
    if (made !== undefined) return { envVar: made.override.envVar };
    const p = this.position(keyPath);
    if (p === undefined || this.file === undefined) return this.file === undefined ? {} : { file: this.file };
    const where = at === "key" ? (p.key ?? p.value) : p.value;
    return { file: this.file, line: where.line, column: where.column };
  };

  provenance(keyPath: KeyPath, isArray: boolean): Provenance {
    const env = this.envFor(keyPath, isArray);
    if (env !== undefined) {
      // A whole-list override sets only the leaves it spells out; the rest are item defaults.
      return env.spelled ? { source: "env", envVar: env.override.envVar } : { source: "default" };
    }
    const inFile = this.file === undefined ? undefined : lookup(this.fileData, keyPath);
    if (inFile === undefined) return { source: "default" };
    // A list whose items are all commented out is null in the file and keeps its default (deepMerge).
    if (isArray && inFile.value === null) return { source: "default" };
    const p = this.position(keyPath);
    return p === undefined
      ? { source: "file", file: this.file }
      : { source: "file", file: this.file, line: (p.key ?? p.value).line };
  }
}

/**
 * Did override `o` set the value `rest` below its own path ("set"), leave it to an earlier source by
 * merging ("merged"), or replace what held it so that it is a default ("replaced")?
 */
function spelledOut(o: EnvOverride, rest: KeyPath): "set" | "merged" | "replaced" {
  let cur = o.value;
  for (const [i, seg] of rest.entries()) {
    if (typeof cur !== "object" || cur === null || !Object.hasOwn(cur, String(seg)))
      return o.merged.has(dotted(rest.slice(0, i))) ? "merged" : "replaced";
    cur = (cur as Record<string, unknown>)[String(seg)];
  }
  return "set";
}

/** The value at `keyPath`, boxed so that a key present with the value undefined or null still counts. */
function lookup(value: unknown, keyPath: KeyPath): { value: unknown } | undefined {
  let cur = value;
  for (const seg of keyPath) {
    if (typeof cur !== "object" || cur === null || !Object.hasOwn(cur, String(seg))) return undefined;
    cur = (cur as Record<string, unknown>)[String(seg)];
  }
  return { value: cur };
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
  emptyServiceEntries(doc);
  const origins = new Origins(file, parsed?.data, parsed?.positions ?? new Map(), overrides);

  const schemaProblems = validateDocument(doc, origins.locate, untouched(parsed?.data, overrides));
  const refused = new Set(schemaProblems.map((p) => p.path));
  const problems: ConfigProblem[] = [
    ...envProblems,
    ...schemaProblems,
    ...checkUniqueNames(doc, origins.locate),
    ...checkEndpoints(doc, origins.locate, refused),
    ...checkCrossKeys(doc, origins.locate),
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
