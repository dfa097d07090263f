/** A small leveled logger to stderr; text for people, JSON lines for machines. */
export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: "text" | "json";
  component?: string;
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level =
    ORDER[opts.level ?? (process.env["HERALD_LOG_LEVEL"] as LogLevel | undefined) ?? "info"] ?? 20;
  const write = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[lvl] < level) return;
    const ts = new Date().toISOString();
    if (opts.format === "json") {
      write(JSON.stringify({ ts, level: lvl, component: opts.component, msg, ...fields }));
      return;
    }
    const extra = fields
      ? ` ${Object.entries(fields)
          .map(([k, v]) => `${k}=${fmt(v)}`)
          .join(" ")}`
      : "";
    write(
      `${ts} ${lvl.toUpperCase().padEnd(5)} ${opts.component ? `[${opts.component}] ` : ""}${msg}${extra}`,
    );
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (component) =>
      createLogger({ ...opts, component: opts.component ? `${opts.component}.${component}` : component }),
  };
}

function fmt(v: unknown): string {
  if (typeof v === "string") return /\s/.test(v) ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v);
}

/** Logger that drops everything (tests, library default). */
export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};

export interface RateLimitOptions {
  /** Lines passed per message text and window. Default 5. */
  burst?: number;
  /** The window, ms. Default 60,000. */
  intervalMs?: number;
  /** Clock (tests). */
  now?: () => number;
  /** What counts as the same line: the message text by default (e.g. add an error code). */
  key?: (msg: string, fields?: Record<string, unknown>) => string;
}

/**
 * Passes at most `burst` lines per window for each message text; the others are counted, and the count
 * goes out with the next line that passes (`suppressed=N`). For the loggers nobody configured (the
 * library's stderr defaults): a flood of gap reports must neither fill a disk nor bury the first ones.
 */
export function rateLimitedLogger(inner: Logger, opts: RateLimitOptions = {}): Logger {
  const burst = opts.burst ?? 5;
  const interval = opts.intervalMs ?? 60_000;
  const now = opts.now ?? Date.now;
  const windows = new Map<string, { start: number; passed: number; suppressed: number }>();
  const gate =
    (lvl: LogLevel) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      const key = `${lvl} ${opts.key ? opts.key(msg, fields) : msg}`;
      const t = now();
      let w = windows.get(key);
      if (w === undefined || t - w.start >= interval) {
        w = { start: t, passed: 0, suppressed: w?.suppressed ?? 0 };
        windows.set(key, w);
      }
      if (w.passed >= burst) {
        w.suppressed++;
        return;
      }
      w.passed++;
      const out = w.suppressed > 0 ? { ...fields, suppressed: w.suppressed } : fields;
      w.suppressed = 0;
      inner[lvl](msg, out);
    };
  return {
    debug: gate("debug"),
    info: gate("info"),
    warn: gate("warn"),
    error: gate("error"),
    child: (component) => rateLimitedLogger(inner.child(component), opts),
  };
}

/**
 * For a line per refused message (the broker's admission, the shim's ingest): every refusal while they are
 * few, then at most 20 a minute per error code with the rest counted (`suppressed=N`); the counters in
 * `herald status` keep the whole count. A flood from a peer nobody trusts must not fill the disk.
 */
export function refusalLogger(inner: Logger): Logger {
  return rateLimitedLogger(inner, {
    burst: 20,
    key: (msg, fields) => `${msg} ${String(fields?.["code"] ?? "")}`,
  });
}
