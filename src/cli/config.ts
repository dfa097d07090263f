import { loadConfig } from "../config/load.js";
import { checkConfigFile, renderConfig } from "../config/show.js";
import { EXIT, out, parse, UsageError } from "./args.js";

const USAGE = `usage: herald config show [--config FILE] [--json]
       herald config check [FILE]

show: the effective configuration and where each value came from (default, file:line, env var).
check: validate a file (default: the one herald would load) without starting anything.`;

export async function config(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(rest, { json: { type: "boolean" } }, USAGE);
  if (values.help || sub === undefined || sub === "--help" || sub === "-h") {
    out(USAGE);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub === "show") {
    const loaded = loadConfig(values.config === undefined ? {} : { configPath: values.config });
    out(renderConfig(loaded, { format: values.json ? "json" : "yaml" }));
    return EXIT.ok;
  }
  if (sub === "check") {
    const file = positionals[0] ?? values.config ?? process.env["HERALD_CONFIG"] ?? "/etc/herald/herald.yaml";
    const result = checkConfigFile(file);
    if (result.ok) {
      out(`${file}: ok`);
      return EXIT.ok;
    }
    process.stderr.write(`${result.error.message}\n`);
    return EXIT.config;
  }
  throw new UsageError(`unknown subcommand 'config ${sub}'\n\n${USAGE}`);
}
