// `herald serve` children on temp dirs and free ports, as the test helpers start them.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { HeraldClient } from "../../dist/client/publisher.js";
import { STATIC_DEFAULTS } from "../../dist/config/defaults.js";
import { freePorts, startChild, tempDir } from "./procs.mjs";
import { CLI, nowMs, OUT, sleep } from "./util.mjs";

/** A fresh state directory and ports for one broker (reuse it to restart the same broker). */
export async function newBrokerHome(extraEnv = {}) {
  const dir = tempDir("herald-bench-"); // removed at exit, Ctrl-C included
  const [herald, legacy] = await freePorts(2);
  const env = {
    ...process.env,
    HERALD_CONFIG: "",
    HERALD_LOG_LEVEL: "warn",
    HERALD_PATHS__RUNTIME_DIR: join(dir, "run"),
    HERALD_PATHS__DATA_DIR: join(dir, "data"),
    HERALD_BROKER__PUBLISH__0__ENDPOINT: `tcp://127.0.0.1:${herald}`,
    HERALD_BROKER__PUBLISH__1__ENDPOINT: `tcp://127.0.0.1:${legacy}`,
    ...extraEnv,
  };
  return {
    dir,
    env,
    submit: `ipc://${join(dir, "run", "submit.sock")}`,
    pub: { herald: `tcp://127.0.0.1:${herald}`, legacy: `tcp://127.0.0.1:${legacy}` },
  };
}

/**
 * Start `herald serve` as installed (`node <flags> dist/bin/herald-serve.cjs serve`) for `home` and wait until it answers a ping.
 * `profileName`: run under `--cpu-prof` writing `bench/out/<profileName>.cpuprofile` at exit.
 * `cli`: another build's CLI, `dist/bin/herald.js` or `dist/cli/main.js` (bench/ab.mjs compares builds).
 * `steady` (default true): also wait out `broker.publishDelay`, so that a load measures the broker as it
 * runs, not its PUB sockets holding everything for 1.5 s after the start and then catching up. Figures
 * that time the start itself (ready time, draining a backlog) pass false.
 */
export async function startServe(
  home,
  { profileName, readyTimeoutMs = 120_000, cli = CLI, steady = true } = {},
) {
  // The node flags the installed `herald` gives `serve`: measure the broker as it runs.
  const nodeArgs = serveFlags(cli);
  if (profileName) {
    mkdirSync(OUT, { recursive: true });
    nodeArgs.push("--cpu-prof", "--cpu-prof-dir", OUT, "--cpu-prof-name", `${profileName}.cpuprofile`);
  }
  const t0 = nowMs();
  const proc = startChild(process.execPath, [serveEntry(cli), "serve"], {
    env: home.env,
    stdin: "ignore",
    nodeArgs,
  });
  const client = new HeraldClient({ endpoint: home.submit, timeoutMs: 250, retries: 0 });
  const deadline = Date.now() + readyTimeoutMs;
  let up = false;
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  try {
    while (!up && !exited && Date.now() < deadline) {
      up = await client.command("ping").then(
        () => true,
        () => false,
      );
      if (!up) await sleep(10);
    }
  } finally {
    await client.close();
  }
  if (!up) {
    proc.kill();
    throw new Error(`herald serve did not come up: ${proc.stderr().slice(-3000)}`);
  }
  const readyMs = nowMs() - t0;
  if (steady) await sleep(Math.max(0, STATIC_DEFAULTS.broker.publishDelay + 100 - readyMs));
  return {
    home,
    proc,
    pid: proc.child.pid,
    readyMs,
    submit: home.submit,
    pub: home.pub,
    async status() {
      const c = new HeraldClient({ endpoint: home.submit, timeoutMs: 10_000, retries: 1 });
      try {
        return await c.status();
      } finally {
        await c.close();
      }
    },
    /** SIGTERM, wait for a clean exit (a CPU profile is written then); SIGKILL after `graceMs`. */
    async stop(graceMs = 15_000) {
      if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await proc.exited;
      clearTimeout(t);
    },
  };
}

/** Poll `herald status` until `cond(status)` holds; returns the elapsed ms, or undefined on timeout. */
export async function waitStatus(broker, cond, timeoutMs = 600_000, stepMs = 100) {
  const t0 = nowMs();
  while (nowMs() - t0 < timeoutMs) {
    const s = await broker.status().catch(() => undefined);
    if (s && cond(s)) return nowMs() - t0;
    await sleep(stepMs);
  }
  return undefined;
}

/** `--flags` on the first line of a `#!/usr/bin/env -S node --flag ...` script. */
export function serveFlags(cli) {
  // Since the CLI bundle: dist/bin/herald, a launcher whose `serve|shim)` line has the flags.
  const launcher = join(dirname(cli), "herald");
  if (existsSync(launcher)) {
    const line = readFileSync(launcher, "utf8")
      .split("\n")
      .find((l) => /^\s*\S*serve\S*\)\s+exec node /.test(l));
    return line ? line.split(/\s+/).filter((w) => w.startsWith("--")) : [];
  }
  // Older builds (bench/ab.mjs against one): the flags were on dist/cli/main.js's shebang.
  const first = readFileSync(cli, "utf8").split("\n", 1)[0] ?? "";
  return first.startsWith("#!") ? first.split(/\s+/).filter((w) => w.startsWith("--")) : [];
}

/**
 * What the installed `herald serve` runs: the serve command's own bundle beside `cli`, where there is one
 * (CommonJS since 023fa08, an ES module before), else the whole CLI.
 */
function serveEntry(cli) {
  for (const own of ["herald-serve.cjs", "herald-serve.js"].map((f) => join(dirname(cli), f)))
    if (existsSync(own)) return own;
  return cli;
}

/** A build tree's CLI: the bundle where the tree has one, else the unbundled entry. */
export function treeCli(tree) {
  const bundle = join(tree, "dist", "bin", "herald.js");
  return existsSync(bundle) ? bundle : join(tree, "dist", "cli", "main.js");
}
