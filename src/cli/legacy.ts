import { existsSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { legacyToHeraldYaml, loadLegacyConfig, renderLegacyTable } from "../legacy/config/index.js";
import { EXIT, noMore, out, parse, UsageError } from "./args.js";

const USAGE = `usage: herald legacy show DIR|FILE [--no-python] [--hostname H]
       herald legacy import DIR|FILE [-o herald.yaml [--force]] [--no-python] [--hostname H]

Read a fedmsg configuration exactly as fedmsg does (python3 evaluates it in a bounded subprocess; without
python3 a restricted evaluator handles the common subset). show prints services, hosts and ports;
import writes the equivalent herald YAML (legacy: section, policy from routing_policy), to stdout or to
a new file (-o; an existing one only with --force: a running shim reloads it at once).`;

export async function legacy(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    {
      output: { type: "string", short: "o" },
      force: { type: "boolean" },
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
    // Absolute: a relative path in a herald file is resolved against that file's directory, not the
    // directory the import ran in.
    const yaml = legacyToHeraldYaml(cfg, { configPath: resolve(path) });
    if (values.output) {
      writeOutput(values.output, yaml, values.force === true);
      out(`wrote ${values.output}`);
    } else out(yaml);
    return EXIT.ok;
  }
  throw new UsageError(`unknown subcommand 'legacy ${sub}'\n\n${USAGE}`);
}

/**
 * The imported YAML is a `legacy:` section only: over a live herald file it would drop paths, broker and
 * sinks, and a running shim applies it at once (services back to their imported stages). So an existing
 * file is replaced only when asked, and in one rename, never half-written.
 */
function writeOutput(file: string, text: string, force: boolean): void {
  const exists = existsSync(file);
  if (exists && !force)
    throw new UsageError(
      `${file} exists: legacy import writes a legacy: section only, and a running shim reloads the file at once. Write to a new file and merge the parts you want, or pass --force to replace it`,
    );
  const target = exists ? realpathSync(file) : file; // through a symlink: replace what it points to
  const tmp = `${target}.import-${process.pid}`;
  try {
    writeFileSync(tmp, text);
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
