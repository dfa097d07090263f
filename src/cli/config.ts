import { loadConfig } from "../config/load.js";
import { checkConfigFile, renderConfig } from "../config/show.js";
import { EXIT, noMore, out, parse, UsageError } from "./args.js";

const USAGE = `usage: herald config show [--config FILE] [--json]
       herald config check [FILE]

show: the effective configuration and where each value came from (default, file:line, env var).
check: validate a file (default: the one herald would load: $HERALD_CONFIG, else /etc/herald/herald.yaml
if it exists, else none) with the environment, without starting anything.`;

export async function config(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { json: { type: "boolean" } }, USAGE);
  if (values.help || sub === undefined || sub === "--help" || sub === "-h") {
    out(USAGE);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub === "show") {
    noMore(positionals, USAGE);
    const loaded = loadConfig(values.config === undefined ? {} : { configPath: values.config });
    out(renderConfig(loaded, { format: values.json ? "json" : "yaml" }));
    return EXIT.ok;
  }
  if (sub === "check") {
    // No FILE: the same lookup as every other command (HERALD_CONFIG, the system file if any, none).
    noMore(positionals.slice(1), USAGE);
    const file = positionals[0] ?? values.config;
    const from = positionals[0] !== undefined ? "the command line" : "--config";
    const result = checkConfigFile(file, process.env, { configPathFrom: from });
    if (result.ok) {
      // The body schemas too: a broken file would stop herald serve at start (loaded here only when set).
      const dir = result.config.schemas.dir;
      const schemas =
        dir === null
          ? ""
          : `, ${(await loadSchemas(dir, result.config.schemas.strict)).size} body schema(s) in ${dir}`;
      out(`${result.loaded.file ?? "(no file: defaults + environment)"}: ok${schemas}`);
      return EXIT.ok;
    }
    process.stderr.write(`${result.error.message}\n`);
    return EXIT.config;
  }
  throw new UsageError(`unknown subcommand 'config ${sub}'\n\n${USAGE}`);
}

async function loadSchemas(dir: string, strict: boolean): Promise<{ size: number }> {
  const { SchemaRegistry } = await import("../schemas/registry.js");
  return new SchemaRegistry({ dir, strict });
}
