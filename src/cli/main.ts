#!/usr/bin/env node
// The whole CLI. Installed as `herald` through dist/bin/herald (launcher.ts), which runs each command's
// own bundle and gives serve and shim their V8 flags; `node dist/bin/herald.js COMMAND` runs this.
import { EXIT, out } from "./args.js";
import { type Command, finish, runCommand } from "./run.js";

const USAGE = `usage: herald COMMAND [options]   (herald COMMAND --help for details)

  serve                 run the broker (and the migration shim when legacy.enabled)
  publish TOPIC [JSON]  publish a message (or JSON lines from stdin)
  tail [PATTERN...]     print messages as they are published
  status                broker, outbox and sinks
  trace ID              where did this message go: stored? each sink's standing with it
  config show|check     effective configuration with provenance; validate a file
  legacy show|import    read fedmsg configuration files
  record FILE [PAT...]  record real traffic to a cassette (JSON lines, exact bytes)
  replay FILE           submit a cassette's messages to the broker again
  shim                  run the fedmsg migration shim in its own process
  cutover status|plan|retire|restore   move fedmsg services off their old ports, with evidence
  demo                  start a broker on embedded defaults and show it working
  keys generate|list|trust|revoke|show   identities for CURVE and message signatures

Exit codes: 0 ok, 1 failed, 2 usage, 3 configuration, 4 broker unavailable, 5 storage failure,
6 security fail-stop (ZAP handler died).`;

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: async () => (await import("./serve.js")).serve,
  publish: async () => (await import("./publish.js")).publish,
  tail: async () => (await import("./tail.js")).tail,
  status: async () => (await import("./status.js")).status,
  trace: async () => (await import("./trace.js")).trace,
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
  return runCommand(async (args) => (await load())(args), rest);
}

finish(main(process.argv.slice(2)));
