import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ValidateFunction } from "ajv";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { STATIC_DEFAULTS } from "../src/config/defaults.js";
import {
  compileValidator,
  evaluateValidatorScript,
  fingerprintLine,
  standaloneValidatorSource,
} from "../src/config/validator-compile.js";
import { ROOT } from "./helpers/serve.js";

// The validator `npm run build` generates must be the one ajv compiles at run time: same verdict, same
// errors (messages, paths, parent schemas, data), in the same order, for any document.
function generatedValidator(): { source: string; validate: ValidateFunction } {
  const source = standaloneValidatorSource();
  // Named as if in src/config/ so that its require("ajv/...") resolves.
  const file = join(ROOT, "src", "config", "config-validator.script.js");
  return { source, validate: evaluateValidatorScript(source, file).validate };
}

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

describe("generated config validator", () => {
  const runtime = compileValidator();
  const generated = generatedValidator();

  it("carries the fingerprint of what it was generated from", () => {
    expect(generated.source.startsWith(fingerprintLine())).toBe(true);
  });

  it("gives the run-time compiled validator's verdict and errors", () => {
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
        const a = runtime(structuredClone(doc));
        const b = generated.validate(structuredClone(doc));
        expect(b).toBe(a);
        verdicts[a ? "valid" : "invalid"]++;
        expect(generated.validate.errors ?? null).toEqual(runtime.errors ?? null);
      }),
      { numRuns: 1500 },
    );
    // Both sides of the verdict were exercised.
    expect(verdicts.valid).toBeGreaterThan(50);
    expect(verdicts.invalid).toBeGreaterThan(500);
  });

  it("is what the built CLI loads: no ajv compile, no yaml on a plain start, V8 takes the code cache", () => {
    const config = join(ROOT, "dist", "config");
    if (!existsSync(join(config, "config-validator.script.cache")))
      throw new Error("run `npm run build` first");
    const script = `import { loadConfig } from ${JSON.stringify(join(config, "load.js"))};
      import { fingerprintLine } from ${JSON.stringify(join(config, "validator-compile.js"))};
      import { readFileSync } from "node:fs";
      import { createRequire } from "node:module";
      import vm from "node:vm";
      loadConfig({});
      const cache = Object.keys(createRequire(import.meta.url).cache);
      const loaded = cache.filter((f) => /node_modules[\\/](ajv[\\/]dist[\\/](core|compile)|yaml)/.test(f));
      const source = readFileSync(${JSON.stringify(join(config, "config-validator.script.js"))}, "utf8");
      const head = Buffer.from(fingerprintLine());
      const data = readFileSync(${JSON.stringify(join(config, "config-validator.script.cache"))});
      const s = new vm.Script(source, { cachedData: data.subarray(head.length) });
      console.log(JSON.stringify({ loaded, head: data.subarray(0, head.length).equals(head), rejected: s.cachedDataRejected }));`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, HERALD_CONFIG: "", HERALD_PATHS__DATA_DIR: join(ROOT, "tmp") },
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    expect(JSON.parse(r.stdout)).toEqual({ loaded: [], head: true, rejected: false });
  });
});
