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
