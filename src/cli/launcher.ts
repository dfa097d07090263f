import { HeraldError } from "../errors.js";

/**
 * `herald` as installed (package.json's bin) is dist/bin/herald, a POSIX sh launcher that
 * scripts/bundle-cli.mjs writes from what is here. It runs each command's own bundle,
 * dist/bin/herald-COMMAND.cjs, and passes V8 flags to the long-running commands only.
 *
 * One bundle per command: a one-shot `herald publish` then loads one file, not the eleven of the whole
 * CLI's split bundle (4-7 ms less of ~65) nor the ~40 modules of dist/cli/ (13-14 ms less).
 *
 * The command bundles are CommonJS (.cjs): Node then runs them without its ES module loader, and takes
 * built-ins and zeromq by require. An ES module's import of a built-in builds a facade that
 * reads every export, so `import ... from "node:fs"` also loads the fs streams it never uses, and the
 * loader itself has to start. A one-shot `herald publish` made ~140 fewer page faults and took 137.5 ->
 * 125.8 ms (median of 31 alternating runs; `node -e 0` took 70 ms on that machine).
 *
 * The V8 flags: any V8 flag on Node's command line makes Node discard the code cache it ships for its
 * own modules, which costs a one-shot command ~20 ms (measured with bench/figures/cli.mjs), so only
 * serve and shim get them:
 * - a 2 MiB young generation instead of Node's 16 MiB: the broker's garbage is short-lived request
 *   buffers, and its RSS after a burst is tens of MB lower at no measured throughput cost;
 * - a full GC once the old generation has tripled rather than V8's up to 4x: messages held in the
 *   outbox's recent window outlive the young generation and die old, so under a sustained burst the old
 *   generation fills with them. docs/cli.md has the figures for both.
 * V8 reads them only at start-up, hence a launcher rather than code in serve.
 */
export const DAEMON_COMMANDS: readonly string[] = ["serve", "shim"];
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=2", "--heap-growing-percent=200"];

/**
 * Every command of main.ts's COMMANDS: its module in dist/cli/ and the function it exports
 * (test/cli-executable.test.ts checks that the two lists agree).
 */
export const COMMAND_MODULES: Readonly<Record<string, { module: string; exportName: string }>> = {
  serve: { module: "serve.js", exportName: "serve" },
  publish: { module: "publish.js", exportName: "publish" },
  tail: { module: "tail.js", exportName: "tail" },
  status: { module: "status.js", exportName: "status" },
  trace: { module: "trace.js", exportName: "trace" },
  config: { module: "config.js", exportName: "config" },
  legacy: { module: "legacy.js", exportName: "legacy" },
  demo: { module: "demo.js", exportName: "demo" },
  record: { module: "record.js", exportName: "record" },
  replay: { module: "record.js", exportName: "replay" },
  shim: { module: "shim.js", exportName: "shim" },
  cutover: { module: "cutover.js", exportName: "cutover" },
  keys: { module: "keys.js", exportName: "keys" },
};

/** The bundle of one command, beside the launcher. */
export function commandBundle(name: string): string {
  return `herald-${name}.cjs`;
}

/** The POSIX sh launcher; `entry` is the whole CLI's bundle (help, version, anything unknown). */
export function launcherScript(entry: string): string {
  const others = Object.keys(COMMAND_MODULES).filter((c) => !DAEMON_COMMANDS.includes(c));
  return `#!/bin/sh
# herald's executable (package.json bin), written by scripts/bundle-cli.mjs from src/cli/launcher.ts:
# each command runs its own bundle; long-running ones get V8 heap flags, the others none (see there).
# The bundles sit beside the real file; readlink (a fork and an exec, ~5 ms) only for a symlink, as npm links bins.
self=$0
[ -L "$self" ] && self=$(readlink -f "$self")
case "$self" in */*) ;; *) self=./$self ;; esac
here=\${self%/*}
case "$1" in
  ${DAEMON_COMMANDS.join("|")}) exec node ${DAEMON_NODE_FLAGS.join(" ")} "$here/herald-$1.cjs" "$@" ;;
  ${others.join("|")}) exec node "$here/herald-$1.cjs" "$@" ;;
  *) exec node "$here/${entry}" "$@" ;;
esac
`;
}

/** The entry esbuild bundles as dist/bin/herald-NAME.cjs: one command, its errors reported by run.ts. */
export function commandEntrySource(name: string, cliDir: string): string {
  const m = COMMAND_MODULES[name];
  if (m === undefined) throw new HeraldError("INTERNAL", `no command ${name} in COMMAND_MODULES`);
  return [
    `import { finish, runCommand } from ${JSON.stringify(`${cliDir}/run.js`)};`,
    `import { ${m.exportName} as command } from ${JSON.stringify(`${cliDir}/${m.module}`)};`,
    // argv: node, this file, the command's name, then its arguments.
    "finish(runCommand(command, process.argv.slice(3)));",
    "",
  ].join("\n");
}
