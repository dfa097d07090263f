/**
 * Durations and sizes as people write them in a config file. Both accept a plain number (milliseconds,
 * bytes) or a string with a unit; both normalise to a non-negative integer. Errors are `ConfigError`s
 * that say what was written and show a valid example, because they end up in front of an operator.
 */
import { ConfigError } from "../errors.js";

const DURATION_UNITS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Largest first: formatDuration picks the biggest unit that divides the value exactly. */
const DURATION_FORMAT_ORDER = ["d", "h", "m", "s"] as const;

const KIB = 1024;
/** Keys are lower case; parsing is case-insensitive. IEC and bare K/M/G/T are 1024-based, kB/MB/GB/TB 1000. */
const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  k: KIB,
  kib: KIB,
  kb: 1000,
  m: KIB ** 2,
  mib: KIB ** 2,
  mb: 1000 ** 2,
  g: KIB ** 3,
  gib: KIB ** 3,
  gb: 1000 ** 3,
  t: KIB ** 4,
  tib: KIB ** 4,
  tb: 1000 ** 4,
};

const SIZE_FORMAT_ORDER: ReadonlyArray<[string, number]> = [
  ["TiB", KIB ** 4],
  ["GiB", KIB ** 3],
  ["MiB", KIB ** 2],
  ["KiB", KIB],
];

const NUMBER = "(\\d+(?:\\.\\d+)?|\\.\\d+)";
const DURATION_PART = new RegExp(`${NUMBER}\\s*(ms|s|m|h|d)`, "gy");
const SIZE_RE = new RegExp(`^${NUMBER}\\s*([a-z]*)$`, "i");
const PLAIN_NUMBER = new RegExp(`^${NUMBER}$`);

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  return `${typeof value} ${String(value)}`;
}

function unitError(kind: "duration" | "size", value: unknown, why: string): ConfigError {
  const examples =
    kind === "duration" ? '500, "500ms", "2.5s", "10m", "1h30m", "7d"' : '1048576, "512KiB", "1MiB", "1GiB"';
  return new ConfigError("CONFIG", `invalid ${kind} ${describe(value)}: ${why}; write e.g. ${examples}`, {
    details: { kind, value },
  });
}

function checkNumber(kind: "duration" | "size", value: number, original: unknown): number {
  if (!Number.isFinite(value)) throw unitError(kind, original, "it must be a finite number");
  if (value < 0) throw unitError(kind, original, "it must not be negative");
  if (value > Number.MAX_SAFE_INTEGER) throw unitError(kind, original, "it is too large");
  return Math.round(value);
}

/**
 * Parse a duration into whole milliseconds. Numbers are milliseconds; strings are one or more
 * `<number><unit>` parts (units ms, s, m, h, d), e.g. "2.5s", "1h30m". A bare numeric string is ms.
 */
export function parseDuration(value: unknown): number {
  if (typeof value === "number") return checkNumber("duration", value, value);
  if (typeof value !== "string") throw unitError("duration", value, "expected a number or a string");
  const text = value.trim();
  if (text === "") throw unitError("duration", value, "it is empty");
  if (PLAIN_NUMBER.test(text)) return checkNumber("duration", Number(text), value);
  DURATION_PART.lastIndex = 0;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    DURATION_PART.lastIndex = pos;
    const m = DURATION_PART.exec(text);
    if (m === null) {
      throw unitError(
        "duration",
        value,
        `cannot read ${JSON.stringify(text.slice(pos))} (units: ms, s, m, h, d)`,
      );
    }
    total += Number(m[1]) * (DURATION_UNITS[m[2] ?? ""] ?? Number.NaN);
    pos = DURATION_PART.lastIndex;
    while (text[pos] === " ") pos++;
  }
  return checkNumber("duration", total, value);
}

/**
 * Parse a size into whole bytes. Numbers are bytes; strings are `<number><unit>` with units B, K/KiB,
 * M/MiB, G/GiB, T/TiB (1024-based) or kB, MB, GB, TB (1000-based), case-insensitive.
 */
export function parseSize(value: unknown): number {
  if (typeof value === "number") return checkNumber("size", value, value);
  if (typeof value !== "string") throw unitError("size", value, "expected a number or a string");
  const text = value.trim();
  if (text === "") throw unitError("size", value, "it is empty");
  const m = SIZE_RE.exec(text);
  if (m === null) throw unitError("size", value, "expected a number followed by a unit");
  const unit = (m[2] ?? "").toLowerCase();
  const factor = unit === "" ? 1 : SIZE_UNITS[unit];
  if (factor === undefined) {
    throw unitError(
      "size",
      value,
      `unknown unit ${JSON.stringify(m[2])} (units: B, KiB, MiB, GiB, TiB, kB, MB, GB)`,
    );
  }
  return checkNumber("size", Number(m[1]) * factor, value);
}

/** Shortest exact rendering that parseDuration reads back to the same number: 600000 -> "10m". */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0ms";
  for (const unit of DURATION_FORMAT_ORDER) {
    const factor = DURATION_UNITS[unit] ?? 1;
    if (ms % factor === 0) return `${ms / factor}${unit}`;
  }
  return `${ms}ms`;
}

/** Shortest exact IEC rendering that parseSize reads back to the same number: 1048576 -> "1MiB". */
export function formatSize(bytes: number): string {
  if (bytes === 0) return "0B";
  for (const [unit, factor] of SIZE_FORMAT_ORDER) {
    if (bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}
