// `npm run build`, after tsc: bundle the CLI (dist/cli/main.js and everything it imports from dist/)
// into dist/bin/, package.json's bin. A one-shot `herald publish` otherwise loads ~40 ES modules one by
// one, and Node's ESM loader costs about a third of a millisecond to a millisecond for each (resolve,
// read, compile, link): ~13 ms of a ~60 ms run on this kind of machine (bench/RESULTS.md, figure 7).
// esbuild (a devDependency only) does what we would otherwise hand-write: a correct module graph
// flattening, code splitting per command and source maps back to src/.
//
// npm packages stay external: zeromq and better-sqlite3 are native addons, and the rest load lazily or
// are CommonJS. Chunks go flat into dist/bin/, one level under dist/ like every dist/ directory, so the
// few module-relative paths herald has ("../config/...", "../transport/...") resolve from both.
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { build } from "esbuild";
import { launcherScript } from "../dist/cli/node-flags.js";

const outdir = new URL("../dist/bin/", import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true }); // chunk names carry content hashes: no stale ones
await build({
  entryPoints: { herald: new URL("../dist/cli/main.js", import.meta.url).pathname },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
});
// package.json's bin: a shell launcher that gives serve and shim their V8 flags (src/cli/node-flags.ts).
writeFileSync(`${outdir}herald`, launcherScript("herald.js"));
chmodSync(`${outdir}herald`, 0o755);
chmodSync(`${outdir}herald.js`, 0o755);
