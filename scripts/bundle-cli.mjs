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
import { chmodSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { build } from "esbuild";
import { COMMAND_MODULES, commandBundle, commandEntrySource, launcherScript } from "../dist/cli/launcher.js";
import { validatorFingerprint } from "../dist/config/validator-compile.js";

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
  // validator-compile.ts: the generated validator's fingerprint, computed now rather than at every start.
  define: { __HERALD_VALIDATOR_FINGERPRINT: JSON.stringify(validatorFingerprint()) },
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
  define: { ...common.define, "import.meta.url": IMPORT_META_URL },
  banner: { js: `const ${IMPORT_META_URL} = require("node:url").pathToFileURL(__filename).href;` },
  entryPoints: Object.fromEntries(
    entries.map((n) => [commandBundle(n).replace(/\.cjs$/, ""), `command:${n}`]),
  ),
  outdir,
  plugins: [
    zeromqInline(),
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

/**
 * zeromq's JavaScript inside the command bundles. `require("zeromq")` costs a one-shot command ~10 ms
 * beyond loading the addon itself: zeromq requires `cmake-ts/build/loader`, a subpath of a package with
 * an "exports" map, and resolving that makes Node compile its ES module resolver; then six small files,
 * each resolved, read and compiled. Bundled, only the addon (a path) is loaded at run time, found through
 * the installed zeromq's directory.
 *
 * The bundled JavaScript must match the installed addon: package.json pins zeromq to one version, and a
 * bundle that finds another installed (a tree changed by hand after the build) requires it as usual.
 */
function zeromqInline() {
  const req = createRequire(import.meta.url);
  const pkgFile = req.resolve("zeromq/package.json");
  const { version } = JSON.parse(readFileSync(pkgFile, "utf8"));
  const index = req.resolve("zeromq");
  const loader = createRequire(index).resolve("cmake-ts/build/loader");
  const resolveDir = dirname(index);
  const pick = [
    `const installed = require("zeromq/package.json").version;`,
    `module.exports = installed === ${JSON.stringify(version)} ? require("zeromq-inline") : require("zeromq");`,
  ].join("\n");
  // zeromq/lib/load-addon.js, with the build directory found from the installed package, not __dirname.
  const loadAddon = [
    `const path = require("node:path");`,
    `const { loadAddon } = require(${JSON.stringify(loader)});`,
    `const dir = path.dirname(require.resolve("zeromq/package.json"));`,
    `Object.defineProperty(exports, "__esModule", { value: true });`,
    `exports.default = loadAddon(path.join(dir, "build"));`,
  ].join("\n");
  return {
    name: "zeromq-inline",
    setup(b) {
      b.onResolve({ filter: /^zeromq$/ }, (a) =>
        a.namespace === "zeromq-pick" ? { external: true } : { path: "zeromq", namespace: "zeromq-pick" },
      );
      b.onResolve({ filter: /^zeromq-inline$/ }, () => ({ path: index }));
      b.onResolve({ filter: /^zeromq\/package\.json$/ }, () => ({ external: true }));
      b.onResolve({ filter: /^\.\/load-addon$/ }, (a) =>
        a.importer === req.resolve("zeromq/lib/native.js")
          ? { path: "load-addon", namespace: "zeromq-addon" }
          : undefined,
      );
      // util/zeromq.ts requires zeromq through createRequire (it says why), which esbuild cannot follow:
      // made a plain require here, so that every use in a bundle is the one module instance.
      b.onLoad({ filter: /[\\/]dist[\\/]util[\\/]zeromq\.js$/ }, (a) => {
        const source = readFileSync(a.path, "utf8");
        const call = 'createRequire(import.meta.url)("zeromq")';
        if (!source.includes(call)) throw new Error(`${a.path} no longer has ${call}: update zeromqInline()`);
        return { contents: source.replace(call, 'require("zeromq")'), loader: "js" };
      });
      b.onLoad({ filter: /.*/, namespace: "zeromq-pick" }, () => ({
        contents: pick,
        resolveDir,
        loader: "js",
      }));
      b.onLoad({ filter: /.*/, namespace: "zeromq-addon" }, () => ({
        contents: loadAddon,
        resolveDir,
        loader: "js",
      }));
    },
  };
}

writeFileSync(`${outdir}herald`, launcherScript("herald.js"));
chmodSync(`${outdir}herald`, 0o755);
chmodSync(`${outdir}herald.js`, 0o755);
