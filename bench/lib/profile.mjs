// Top self-time functions of a V8 .cpuprofile (written by `node --cpu-prof` when the broker exits).
import { existsSync, readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { dirname, relative, resolve } from "node:path";
import { ROOT } from "./util.mjs";

export function topSelfTime(file, n = 10) {
  const prof = JSON.parse(readFileSync(file, "utf8"));
  const dt = new Map();
  // timeDeltas[i] is the time before sample i; attribute it to that sample's node.
  const samples = prof.samples ?? [];
  const deltas = prof.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) dt.set(samples[i], (dt.get(samples[i]) ?? 0) + (deltas[i] ?? 0));
  const byFn = new Map();
  let total = 0;
  for (const node of prof.nodes) {
    const us = dt.get(node.id) ?? 0;
    total += us;
    const cf = node.callFrame;
    const where = cf.url ? (sourceLocation(cf) ?? `${shortUrl(cf.url)}:${cf.lineNumber + 1}`) : "";
    const key = `${cf.functionName || "(anonymous)"} ${where}`.trim();
    byFn.set(key, (byFn.get(key) ?? 0) + us);
  }
  // Idle time is the broker waiting for work; report shares of the busy time only.
  const idle = byFn.get("(idle)") ?? 0;
  byFn.delete("(idle)");
  total -= idle;
  return [...byFn.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([fn, us]) => ({ fn, ms: Math.round(us / 1000), pct: Math.round((us / total) * 1000) / 10 }));
}

function shortUrl(url) {
  const path = url.replace(/^file:\/\//, "");
  return path.startsWith(ROOT) ? relative(ROOT, path) : path.replace(/^.*node_modules\//, "");
}

const maps = new Map();

/**
 * The src/ location of a frame in the CLI bundle (dist/bin/chunk-*.js), through the bundle's source map
 * (esbuild chains it through tsc's maps back to src/*.ts); undefined for any other file.
 */
function sourceLocation(cf) {
  const file = cf.url.replace(/^file:\/\//, "");
  if (!file.includes("/dist/bin/")) return undefined;
  if (!maps.has(file)) {
    const mapFile = `${file}.map`;
    maps.set(file, existsSync(mapFile) ? new SourceMap(JSON.parse(readFileSync(mapFile, "utf8"))) : null);
  }
  const entry = maps.get(file)?.findEntry(cf.lineNumber, cf.columnNumber);
  if (!entry?.originalSource) return undefined;
  const src = resolve(dirname(file), entry.originalSource.replace(/^file:\/\//, ""));
  return `${relative(ROOT, src)}:${entry.originalLine + 1}`;
}
