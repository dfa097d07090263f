import type { Logger } from "../../src/util/log.js";

export interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A logger that keeps every line, for asserting what was said. */
export function memoryLogger(into: LogLine[]): Logger {
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}): void => {
      into.push({ level, msg, fields });
    };
  const log: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => log,
  };
  return log;
}
