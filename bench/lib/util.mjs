// Small shared helpers: paths, statistics, clocks.
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..", "..");
export const DIST = resolve(ROOT, "dist");
/** The bundled CLI, and `herald` as installed (package.json's bin: a launcher that runs the bundle). */
export const CLI = resolve(DIST, "bin", "herald.js");
export const LAUNCHER = resolve(DIST, "bin", "herald");
export const OUT = resolve(ROOT, "bench", "out");
/** Debian's python3 (python3-zmq, python3-pika); the one on PATH is pyenv's and has neither. */
/**
 * Messages each publishing process sends before its measured ones (full runs): steady state, as a
 * long-running publisher sees it. V8 keeps compiling the client's and the broker's hot functions for the
 * first ~1,500 messages (`--trace-opt`: each concurrent compile on 2 cores showed up as a 2-9 ms publish),
 * and 8 cold processes compiling at once measured JIT warm-up (windowed: 43-44k msg/s with 50, 49.6-49.9k
 * with 2,000). The AMQP figure gives its raw reference the same count.
 */
export const WARMUP = 2000;

export const PY = "/usr/bin/python3";
export const AMQP_URL = process.env.BENCH_AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672/%2F";

/** Wall clock in ms with sub-ms resolution, comparable across processes on the same machine. */
export function nowMs() {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx];
}

/** Latency summary in microseconds from an array of ms durations. */
export function latencyUs(msList) {
  const s = [...msList].sort((a, b) => a - b);
  return { p50_us: round(percentile(s, 0.5) * 1000), p99_us: round(percentile(s, 0.99) * 1000) };
}

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Median/min/max of repetitions; `pick` extracts the number from each repetition. */
export function summarize(reps, pick = (r) => r) {
  const v = reps.map(pick).filter((x) => Number.isFinite(x));
  return { value: median(v), min: Math.min(...v), max: Math.max(...v), reps: v.length };
}

/** Median of a per-repetition field (p50/p99), rounded. */
export function medianOf(reps, key) {
  const v = reps.map((r) => r[key]).filter((x) => Number.isFinite(x));
  return v.length ? round(median(v)) : undefined;
}

export function round(x, digits = 0) {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Significant-figure rounding for display and JSON. */
export function sig(x, n = 4) {
  if (!Number.isFinite(x) || x === 0) return x;
  const d = Math.max(0, n - 1 - Math.floor(Math.log10(Math.abs(x))));
  return round(x, Math.min(d, 6));
}

export async function repeat(n, fn) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await fn(i));
  return out;
}
