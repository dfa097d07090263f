/**
 * The yaml package, loaded on first use. Importing it costs tens of milliseconds, and loadConfig runs
 * at every CLI start, most often with no config file and only simple HERALD_* values (which env.ts
 * reads without yaml): a one-shot `herald publish` should not pay for a parser it does not use.
 * loadConfig is synchronous (and public), hence require() rather than `await import()`; yaml's "node"
 * export is CommonJS, the same module instance an `import "yaml"` elsewhere gets.
 */
import { createRequire } from "node:module";
import type * as Yaml from "yaml";

let loaded: typeof Yaml | undefined;

export function yaml(): typeof Yaml {
  loaded ??= createRequire(import.meta.url)("yaml") as typeof Yaml;
  return loaded;
}
