/**
 * V8 flags for the long-running commands only. `herald` (dist/bin/herald, a shell launcher written by
 * scripts/bundle-cli.mjs from these constants) passes them to `serve` and `shim` and to nothing else:
 * any V8 flag on Node's command line makes Node discard the code cache it ships for its own modules,
 * which costs a one-shot `herald publish` ~20 ms of its ~60 (measured with bench/figures/cli.mjs).
 *
 * - a 2 MiB young generation instead of Node's 16 MiB: the broker's garbage is short-lived request
 *   buffers, and its RSS after a burst is tens of MB lower at no measured throughput cost;
 * - a full GC once the old generation has tripled rather than V8's up to 4x: messages held in the
 *   outbox's recent window outlive the young generation and die old, so under a sustained burst the old
 *   generation fills with them. docs/cli.md has the figures for both.
 *
 * V8 reads them only at start-up, hence a launcher rather than code in serve.
 */
export const DAEMON_COMMANDS: readonly string[] = ["serve", "shim"];
export const DAEMON_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=2", "--heap-growing-percent=200"];

/** The POSIX sh launcher installed as `herald`; `entry` is the bundled CLI's file name beside it. */
export function launcherScript(entry: string): string {
  return `#!/bin/sh
# herald's executable (package.json bin), written by scripts/bundle-cli.mjs from src/cli/node-flags.ts.
# Long-running commands get V8 heap flags; the others none, since any V8 flag costs every start ~20 ms.
self=$(readlink -f "$0")
here=\${self%/*}
case "$1" in
  ${DAEMON_COMMANDS.join("|")}) exec node ${DAEMON_NODE_FLAGS.join(" ")} "$here/${entry}" "$@" ;;
  *) exec node "$here/${entry}" "$@" ;;
esac
`;
}
