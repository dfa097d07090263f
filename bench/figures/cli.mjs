// Figure group 7: one-shot publish of one message from a fresh process (broker running): wall time of
// `herald publish` against the Python equivalents: herald's own scripts/herald_publish.py, a
// fedmsg-logger reproduction (PUB connect, post_init_sleep 0.5 s, send) and a `fedora-messaging publish`
// reproduction (pika connect, confirm, publish); and the real console scripts when `--fedmsg-src` or
// `--fedora-messaging-src` give their source trees.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { figure } from "../lib/figure.mjs";
import { cliReferences } from "../lib/peers.mjs";
import { freePorts, nodeWorker, trackChild } from "../lib/procs.mjs";
import { boundQueue } from "../lib/rabbit.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { AMQP_URL, CLI, LAUNCHER, median, OUT, PY, ROOT, repeat } from "../lib/util.mjs";

const py = (f) => new URL(`../py/${f}`, import.meta.url).pathname;

const UNTARGETED = new Set(["node_bare_start", "herald_publish"]);

/**
 * Node 20 reads and parses the whole file NODE_EXTRA_CA_CERTS names at every start, before any script
 * runs (~45 ms for Debian's CA bundle on this kind of machine). Some sandboxes set it for every process;
 * a host running herald has no reason to. Every command here runs without it, and
 * cli.node_start_with_extra_ca_certs reports what it costs when it is set.
 */
const EXTRA_CA = "NODE_EXTRA_CA_CERTS";

function withoutExtraCa(env) {
  const { [EXTRA_CA]: _dropped, ...rest } = env;
  return rest;
}

/** A one-shot that has not exited after this long is hung (a broker or RabbitMQ not answering): killed. */
const WALL_TIMEOUT_MS = 60_000;

/**
 * Wall time (ms) of one process run to a successful exit. The child is tracked with the runner's others
 * (killed on Ctrl-C or a failed run) and killed after WALL_TIMEOUT_MS.
 */
function wall(cmd, args, env) {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const c = trackChild(spawn(cmd, args, { env, stdio: ["ignore", "ignore", "pipe"] }));
    let err = "";
    const timer = setTimeout(() => {
      err += `\n(killed after ${WALL_TIMEOUT_MS / 1000} s)`;
      c.kill("SIGKILL");
    }, WALL_TIMEOUT_MS);
    c.stderr.on("data", (d) => {
      err += d.toString();
    });
    c.on("error", (e) => {
      clearTimeout(timer);
      rej(e);
    });
    c.on("exit", (code, signal) => {
      clearTimeout(timer);
      const ms = performance.now() - t0;
      if (code === 0) res(ms);
      else rej(new Error(`${cmd} ${args.join(" ")} exited ${code ?? signal}: ${err.slice(-500)}`));
    });
  });
}

/** Per repetition: the median wall time of `runs` consecutive runs. */
async function timeIt(ctx, cmd, args, env) {
  const runs = ctx.n(5, 2);
  await wall(cmd, args, env); // warm the page cache
  return repeat(ctx.reps, async () => median(await repeat(runs, () => wall(cmd, args, env))));
}

export async function run(ctx) {
  const broker = await startServe(await newBrokerHome());
  const [relayPort] = await freePorts(1);
  const relay = nodeWorker("sub-bind.mjs", ["--bind", `tcp://127.0.0.1:${relayPort}`]);
  // fedora-messaging publishes with mandatory set: a bound durable queue makes the one-shot publish
  // routable and persisted (both the reproduction's and the real package's), as herald's is stored.
  const topic = `org.fedoraproject.prod.bench.cli-${randomBytes(4).toString("hex")}`;
  let queue;
  try {
    // RabbitMQ down: the AMQP references then fail on their own ("reference failed"), the rest still runs.
    queue = await boundQueue(topic).catch(() => undefined);
    await relay.waitLine((l) => l.bound);
    const env = withoutExtraCa(broker.home.env);
    // As installed: package.json's bin, the launcher that runs the bundled CLI.
    const herald = await timeIt(ctx, LAUNCHER, ["publish", "bench.cli", "{}"], env);
    const refs = [
      // The floor under any Node.js one-shot: the runtime's own start, no herald code loaded.
      ["node_bare_start", "node -e 0 (Node's own start)", process.execPath, ["-e", "0"], env],
      [
        "herald_publish",
        "herald_publish.py",
        PY,
        [resolve(ROOT, "scripts", "herald_publish.py"), "--endpoint", broker.submit, "bench.cli", "{}"],
        env,
      ],
      [
        "fedmsg_logger",
        "fedmsg-logger (python reproduction)",
        PY,
        [py("oneshot_fedmsg.py"), `tcp://127.0.0.1:${relayPort}`],
        env,
      ],
      [
        "fedora_messaging",
        "fedora-messaging publish (pika reproduction)",
        PY,
        [py("oneshot_pika.py"), AMQP_URL, topic],
        env,
      ],
      ...cliReferences(ctx, { relay: `tcp://127.0.0.1:${relayPort}`, topic }),
    ];
    const out = [];
    for (const [suffix, name, cmd, args, refEnv, prepare] of refs) {
      let ref;
      try {
        await prepare?.();
        ref = await timeIt(ctx, cmd, args, refEnv);
      } catch (err) {
        out.push({
          ...figure({ figure: `cli.herald_publish_vs_${suffix}`, values: herald, unit: "ms" }),
          note: `reference failed: ${err.message.slice(0, 300)}`,
        });
        continue;
      }
      out.push(
        figure({
          figure: `cli.herald_publish_vs_${suffix}`,
          values: herald,
          unit: "ms",
          reference: { name, value: median(ref) },
          // herald's own Python client and bare Node are comparisons, not predecessors to beat.
          target: UNTARGETED.has(suffix) ? undefined : { kind: "ratio<=", x: 1.0 },
          profileGroup: "cli",
          note: `wall time of \`dist/bin/herald publish bench.cli '{}'\` (acked; the installed bin) vs ${name}; median of ${ctx.n(5, 2)} runs per repetition; ratio < 1 means herald is faster`,
        }),
      );
    }
    if (broker.home.env[EXTRA_CA]) out.push(await extraCaFigure(ctx, broker.home.env, env));
    return out;
  } finally {
    relay.kill();
    await broker.stop();
    await queue?.remove();
  }
}

/** Node's own start with the machine's NODE_EXTRA_CA_CERTS against without it: the environment's cost. */
async function extraCaFigure(ctx, withIt, without) {
  const bare = ["-e", "0"];
  const ref = await timeIt(ctx, process.execPath, bare, without);
  return figure({
    figure: "cli.node_start_with_extra_ca_certs",
    values: await timeIt(ctx, process.execPath, bare, withIt),
    unit: "ms",
    reference: { name: "node -e 0 without it", value: median(ref) },
    note: `node -e 0 with ${EXTRA_CA}=${withIt[EXTRA_CA]} (set in this machine's environment; Node 20 parses it at every start) vs without; the cli figures above run without it`,
  });
}

/**
 * `herald publish` of one message under `--cpu-prof` against a running broker (bench/run.mjs calls this
 * when the figure misses). Sampled every 100 us: the whole process lives ~100 ms.
 */
export async function profile(_ctx, name) {
  const broker = await startServe(await newBrokerHome());
  try {
    mkdirSync(OUT, { recursive: true });
    // What the launcher runs for publish, with no flags.
    const args = [join(dirname(CLI), "herald-publish.cjs"), "publish", "bench.cli", "{}"];
    const env = withoutExtraCa(broker.home.env);
    await wall(process.execPath, args, env); // warm the page cache, as the figure does
    const prof = ["--cpu-prof", "--cpu-prof-interval", "100", "--cpu-prof-dir", OUT];
    await wall(process.execPath, [...prof, "--cpu-prof-name", `${name}.cpuprofile`, ...args], env);
  } finally {
    await broker.stop();
  }
}
