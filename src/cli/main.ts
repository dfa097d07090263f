#!/usr/bin/env node
// Installed as `herald` through dist/bin/herald, which adds V8 flags for serve and shim (node-flags.ts).
import { ConfigError, HeraldError } from "../errors.js";
import { EXIT, out, UsageError } from "./args.js";

const USAGE = `usage: herald COMMAND [options]   (herald COMMAND --help for details)

  serve                 run the broker (and the migration shim when legacy.enabled)
  publish TOPIC [JSON]  publish a message (or JSON lines from stdin)
  tail [PATTERN...]     print messages as they are published
  status                broker, outbox and sinks
  config show|check     effective configuration with provenance; validate a file
  legacy show|import    read fedmsg configuration files
  record FILE [PAT...]  record real traffic to a cassette (JSON lines, exact bytes)
  replay FILE           submit a cassette's messages to the broker again
  shim                  run the fedmsg migration shim in its own process
  cutover status|plan|retire|restore   move fedmsg services off their old ports, with evidence
  demo                  start a broker on embedded defaults and show it working
  keys generate|list|trust|revoke|show   identities for CURVE and message signatures

Exit codes: 0 ok, 1 failed, 2 usage, 3 configuration, 4 broker unavailable, 5 storage failure.`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import("./serve.js")).serve,
  publish: async () => (await import("./publish.js")).publish,
  tail: async () => (await import("./tail.js")).tail,
  status: async () => (await import("./status.js")).status,
  config: async () => (await import("./config.js")).config,
  legacy: async () => (await import("./legacy.js")).legacy,
  demo: async () => (await import("./demo.js")).demo,
  record: async () => (await import("./record.js")).record,
  replay: async () => (await import("./record.js")).replay,
  shim: async () => (await import("./shim.js")).shim,
  cutover: async () => (await import("./cutover.js")).cutover,
  keys: async () => (await import("./keys.js")).keys,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    out(USAGE);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === "--version") {
    out("herald 0.1.0");
    return EXIT.ok;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`herald: unknown command '${name}'\n\n${USAGE}\n`);
    return EXIT.usage;
  }
  try {
    return await (await load())(rest);
  } catch (err) {
    return reportError(err);
  }
}

/** User mistakes get one clear line and an exit code; only real bugs show a stack trace. */
function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`herald: ${err.message}\n`);
    return EXIT.usage;
  }
  if (err instanceof ConfigError) {
    process.stderr.write(`herald: configuration error: ${err.message}\n`);
    return EXIT.config;
  }
  if (err instanceof HeraldError) {
    process.stderr.write(`herald: ${err.code}: ${err.message}\n`);
    if (err.code === "NO_BROKER" || err.code === "TIMEOUT") return EXIT.unavailable;
    return EXIT.failed;
  }
  process.stderr.write(`herald: internal error (please report): ${(err as Error)?.stack ?? String(err)}\n`);
  return EXIT.failed;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`herald: ${String(err)}\n`);
    process.exitCode = EXIT.failed;
  },
);
