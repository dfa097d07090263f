import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ErrorObject, ValidateFunction } from "ajv";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { STATIC_DEFAULTS } from "../src/config/defaults.js";
import {
  compileValidator,
  evaluateValidatorScript,
  fingerprintLine,
  standaloneValidatorSource,
  TOP_PART,
  VALIDATOR_PARTS,
  WHOLE,
} from "../src/config/validator-compile.js";
import { ROOT } from "./helpers/serve.js";

// The validators `npm run build` generates must be the ones ajv compiles at run time: same verdict, same
// errors (messages, paths, parent schemas, data), in the same order, for any document. And the parts
// together must say what the whole schema says.
function generatedValidator(part: string): { source: string; validate: ValidateFunction } {
  const source = standaloneValidatorSource(part);
  // Named as if in src/config/ so that its require("ajv/...") resolves.
  const file = join(ROOT, "src", "config", "config-validator.script.js");
  return { source, validate: evaluateValidatorScript(source, file).validate };
}

/** Every part's errors for `doc`, as schemaErrors collects them (top level first, sections in order). */
function partErrors(validators: ReadonlyMap<string, ValidateFunction>, doc: unknown): ErrorObject[] {
  const errors: ErrorObject[] = [];
  for (const part of VALIDATOR_PARTS) {
    if (part !== TOP_PART && (typeof doc !== "object" || doc === null || Array.isArray(doc))) break;
    if (part !== TOP_PART && !Object.hasOwn(doc as object, part)) continue;
    const v = validators.get(part)!;
    if (!v(structuredClone(doc))) errors.push(...(v.errors ?? []));
  }
  return errors;
}

const byPath = (e: ErrorObject) => `${e.instancePath} ${e.schemaPath} ${JSON.stringify(e.params)}`;

/** What a user sees of an error. The top part's parent schema lists the sections as `{}`, so not that. */
const seen = (errors: readonly ErrorObject[]) =>
  errors
    .map(({ instancePath, schemaPath, keyword, params, message, data }) => ({
      instancePath,
      schemaPath,
      keyword,
      params,
      message,
      data,
    }))
    .sort((x, y) => byPath(x as ErrorObject).localeCompare(byPath(y as ErrorObject)));

const BASE = {
  ...structuredClone(STATIC_DEFAULTS),
  paths: { runtimeDir: "/run/h", dataDir: "/var/lib/h" },
  sinks: [
    { name: "r", type: "amqp", url: "amqp://mq/%2F", heartbeat: "10s", tls: { ca: "/ca.pem" } },
    { name: "f", type: "forward", endpoint: "tcp://h:1", timeout: 500 },
    { name: "z", type: "zeromq", endpoint: "tcp://h:2", format: "legacy" },
  ],
  sources: [{ name: "in", type: "amqp", url: "amqp://mq/", bindings: ["org.#"] }],
};

const VALUES: unknown[] = [
  "",
  "x",
  "10s",
  "soon",
  "5MiB",
  "-1",
  "1 KB",
  "tcp://x:1",
  "amqp://x",
  "herald",
  "legacy",
  "zeromq",
  "forward",
  "amqp",
  "has space",
  0,
  -1,
  1.5,
  1e12,
  Number.MAX_SAFE_INTEGER + 2,
  true,
  null,
  [],
  ["x"],
  [1],
  {},
  { a: 1 },
  { name: "n", type: "forward" },
];

function paths(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  if (typeof v !== "object" || v === null) return [at];
  const keys: Array<string | number> = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
  return [at, ...keys.flatMap((k) => paths((v as Record<string, unknown>)[k], [...at, k]))];
}
const PATHS = paths(BASE);

type Mutation = { path: number; op: "set" | "delete" | "add"; value: number };

function mutate(doc: unknown, m: Mutation): unknown {
  const path = PATHS[m.path % PATHS.length] ?? [];
  const value = structuredClone(VALUES[m.value % VALUES.length]);
  if (path.length === 0) return m.op === "set" ? value : doc;
  if (typeof doc !== "object" || doc === null) return doc;
  let parent = doc as Record<string | number, unknown>;
  for (const seg of path.slice(0, -1)) {
    const next = parent[seg];
    if (typeof next !== "object" || next === null) return doc;
    parent = next as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (m.op === "set") parent[last] = value;
  else if (m.op === "delete" && !Array.isArray(parent)) delete parent[last];
  else if (typeof parent === "object" && !Array.isArray(parent)) parent[`extra${String(last)}`] = value;
  return doc;
}

describe("generated config validators", () => {
  const runtime = new Map(VALIDATOR_PARTS.map((p) => [p, compileValidator(p)]));
  const generated = new Map(VALIDATOR_PARTS.map((p) => [p, generatedValidator(p)]));
  const generatedFns = new Map([...generated].map(([p, g]) => [p, g.validate]));
  const whole = compileValidator(WHOLE);

  it("cover the top level and every section, each carrying the fingerprint of what it was generated from", () => {
    expect(VALIDATOR_PARTS).toEqual([TOP_PART, ...Object.keys(STATIC_DEFAULTS)]);
    for (const g of generated.values()) expect(g.source.startsWith(fingerprintLine())).toBe(true);
  });

  it("pass the defaults, which loadConfig does not validate again", () => {
    for (const [part, v] of generatedFns) expect(v(structuredClone(STATIC_DEFAULTS)), part).toBe(true);
    expect(whole(structuredClone(STATIC_DEFAULTS))).toBe(true);
  });

  it("give the run-time compiled validators' verdicts and errors, and together the whole schema's", () => {
    const arb = fc.array(
      fc.record({
        path: fc.nat(),
        op: fc.constantFrom("set" as const, "delete" as const, "add" as const),
        value: fc.nat(),
      }),
      { maxLength: 4 },
    );
    const verdicts = { valid: 0, invalid: 0 };
    fc.assert(
      fc.property(arb, (mutations) => {
        const doc = mutations.reduce((d, m) => mutate(d, m), structuredClone(BASE) as unknown);
        const a = partErrors(runtime, doc);
        expect(partErrors(generatedFns, doc)).toEqual(a);
        const valid = whole(structuredClone(doc));
        expect(a.length === 0).toBe(valid);
        verdicts[valid ? "valid" : "invalid"]++;
        // The same errors as one validator of the whole schema; only their order may differ.
        expect(seen(a)).toEqual(seen(whole.errors ?? []));
      }),
      { numRuns: 1500 },
    );
    // Both sides of the verdict were exercised.
    expect(verdicts.valid).toBeGreaterThan(50);
    expect(verdicts.invalid).toBeGreaterThan(500);
  });

  it("are what the built CLI loads: only the parts set, no ajv compile, no yaml, V8 takes the code cache", () => {
    const config = join(ROOT, "dist", "config");
    if (!existsSync(join(config, "config-validator.paths.script.cache")))
      throw new Error("run `npm run build` first");
    const script = `import { loadConfig } from ${JSON.stringify(join(config, "load.js"))};
      import { loadedValidatorParts } from ${JSON.stringify(join(config, "validate.js"))};
      import { fingerprintLine } from ${JSON.stringify(join(config, "validator-compile.js"))};
      import { readFileSync } from "node:fs";
      import { createRequire } from "node:module";
      import vm from "node:vm";
      loadConfig({});
      const cache = Object.keys(createRequire(import.meta.url).cache);
      const loaded = cache.filter((f) => /node_modules[\\/](ajv[\\/]dist[\\/](core|compile)|yaml)/.test(f));
      const source = readFileSync(${JSON.stringify(join(config, "config-validator.paths.script.js"))}, "utf8");
      const head = Buffer.from(fingerprintLine());
      const data = readFileSync(${JSON.stringify(join(config, "config-validator.paths.script.cache"))});
      const s = new vm.Script(source, { cachedData: data.subarray(head.length) });
      const parts = loadedValidatorParts();
      console.log(JSON.stringify({ loaded, parts, head: data.subarray(0, head.length).equals(head), rejected: s.cachedDataRejected }));`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, HERALD_CONFIG: "", HERALD_PATHS__DATA_DIR: join(ROOT, "tmp") },
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    const parts = [TOP_PART, "paths"];
    expect(JSON.parse(r.stdout)).toEqual({ loaded: [], parts, head: true, rejected: false });
  });
});
