// `npm run build`, after tsc: bundle the CLI from dist/ into dist/bin/, package.json's bin.
// - dist/bin/herald.js: the whole CLI (dist/cli/main.js), split per command.
// - dist/bin/herald-COMMAND.cjs: one CommonJS bundle per command, which the launcher runs (launcher.ts
//   says why CommonJS).
// - dist/bin/herald: the launcher (src/cli/launcher.ts says why each piece is there).
// A one-shot `herald publish` otherwise loads ~40 ES modules one by one, and Node's ESM loader costs up
// to a millisecond for each (resolve, read, compile, link). esbuild (a devDependency only) does what we
// would otherwise hand-write: a correct module-graph flattening, code splitting, and source maps back to
// src/ (bench/lib/profile.mjs reads them to name src/ lines in CPU profiles).
//
// npm packages stay external: zeromq and better-sqlite3 are native addons, and the rest load lazily or
// are CommonJS. Everything goes flat into dist/bin/, one level under dist/ like every dist/ directory,
// so the few module-relative paths herald has ("../config/...", "../transport/...") resolve from both.
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { build } from "esbuild";
import { COMMAND_MODULES, commandBundle, commandEntrySource, launcherScript } from "../dist/cli/launcher.js";

const outdir = new URL("../dist/bin/", import.meta.url).pathname;
const cliDir = new URL("../dist/cli", import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true }); // chunk names carry content hashes: no stale ones

const common = {
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
};

await build({ ...common, entryPoints: { herald: `${cliDir}/main.js` }, outdir, splitting: true });

// Each command from a generated entry (launcher.ts), resolved through a virtual namespace, as CommonJS.
// herald's modules locate files beside them through import.meta.url, which CommonJS lacks: the banner
// computes it once from __filename, and `define` points every use at it.
const entries = Object.keys(COMMAND_MODULES);
const IMPORT_META_URL = "__herald_import_meta_url";
await build({
  ...common,
  format: "cjs",
  outExtension: { ".js": ".cjs" },
  define: { "import.meta.url": IMPORT_META_URL },
  banner: { js: `const ${IMPORT_META_URL} = require("node:url").pathToFileURL(__filename).href;` },
  entryPoints: Object.fromEntries(
    entries.map((n) => [commandBundle(n).replace(/\.cjs$/, ""), `command:${n}`]),
  ),
  outdir,
  plugins: [
    {
      name: "command-entries",
      setup(b) {
        b.onResolve({ filter: /^command:/ }, (a) => ({ path: a.path.slice(8), namespace: "command" }));
        b.onLoad({ filter: /.*/, namespace: "command" }, (a) => ({
          contents: commandEntrySource(a.path, cliDir),
          resolveDir: cliDir,
          loader: "js",
        }));
      },
    },
  ],
});

writeFileSync(`${outdir}herald`, launcherScript("herald.js"));
chmodSync(`${outdir}herald`, 0o755);
chmodSync(`${outdir}herald.js`, 0o755);
