import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { createLogger, type Logger } from "../util/log.js";

export interface CliContext {
  config: HeraldConfig;
  file: string | undefined;
  log: Logger;
}

/** Load configuration the one documented way: --config, else $HERALD_CONFIG, else /etc/herald/herald.yaml, else defaults. */
export function context(configPath: string | undefined): CliContext {
  const loaded = loadConfig(configPath === undefined ? {} : { configPath });
  const log = createLogger({
    level: loaded.config.log.level,
    format: loaded.config.log.format,
    component: "herald",
  });
  return { config: loaded.config, file: loaded.file, log };
}
