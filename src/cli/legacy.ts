import { writeFileSync } from "node:fs";
import { legacyToHeraldYaml, loadLegacyConfig, renderLegacyTable } from "../legacy/config/index.js";
import { EXIT, noMore, out, parse, UsageError } from "./args.js";

const USAGE = `usage: herald legacy show DIR|FILE [--no-python] [--hostname H]
       herald legacy import DIR|FILE [-o herald.yaml] [--no-python] [--hostname H]

Read a fedmsg configuration exactly as fedmsg does (python3 evaluates it in a bounded subprocess; without
python3 a restricted evaluator handles the common subset). show prints services, hosts and ports;
import writes the equivalent herald YAML (legacy: section, policy from routing_policy).`;

export async function legacy(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    {
      output: { type: "string", short: "o" },
      "no-python": { type: "boolean" },
      hostname: { type: "string" },
    },
    USAGE,
  );
  if (values.help || sub === undefined || sub === "--help" || sub === "-h") {
    out(USAGE);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (sub !== "show" && sub !== "import")
    throw new UsageError(`unknown subcommand 'legacy ${sub}'\n\n${USAGE}`);
  const path = positionals[0];
  if (!path) throw new UsageError(`a fedmsg config directory or file is required\n\n${USAGE}`);
  noMore(positionals.slice(1), USAGE);
  const cfg = await loadLegacyConfig(path, {
    ...(values["no-python"] ? { python: false as const } : {}),
    ...(values.hostname ? { hostname: values.hostname } : {}),
  });
  for (const w of cfg.warnings) process.stderr.write(`warning: ${w}\n`);
  if (sub === "show") {
    out(renderLegacyTable(cfg));
    return EXIT.ok;
  }
  if (sub === "import") {
    const yaml = legacyToHeraldYaml(cfg, { configPath: path });
    if (values.output) {
      writeFileSync(values.output, yaml);
      out(`wrote ${values.output}`);
    } else out(yaml);
    return EXIT.ok;
  }
  throw new UsageError(`unknown subcommand 'legacy ${sub}'\n\n${USAGE}`);
}
