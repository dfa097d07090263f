// Figure group 8: the broker's footprint: RSS and CPU idle and under load, RSS with a large backlog of
// pending messages (a forward sink to a dead endpoint keeps everything pending), and the time until a
// restarted broker answers with that backlog.
import { rmSync } from "node:fs";
import { figure, loadErrors } from "../lib/figure.mjs";
import { freePorts, procUsage, sampleUsage } from "../lib/procs.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { repeat, sleep } from "../lib/util.mjs";
import { burst } from "./multi.mjs";

const MB = 1024 * 1024;

async function idleAndLoad(ctx) {
  const broker = await startServe(await newBrokerHome());
  try {
    await sleep(2500); // past the publish delay (1.5 s) and start-up work
    const idle = await sampleUsage(broker.pid, () => sleep(ctx.n(5000, 2000)));
    const load = await sampleUsage(broker.pid, () => burst(ctx, broker, { count: ctx.n(16_000, 1600) }));
    return { idle, load };
  } finally {
    await broker.stop();
  }
}

async function backlog(ctx) {
  const [dead] = await freePorts(1);
  const n = ctx.backlog;
  const home = await newBrokerHome({
    HERALD_SINKS__0__NAME: "down",
    HERALD_SINKS__0__TYPE: "forward",
    HERALD_SINKS__0__ENDPOINT: `tcp://127.0.0.1:${dead}`,
    HERALD_OUTBOX__MAX_MESSAGES: String(Math.ceil(n * 1.2) + 10_000),
    HERALD_OUTBOX__MAX_BYTES: "8GiB",
  });
  let broker = await startServe(home);
  try {
    const t0 = performance.now();
    // Sampled during the fill too: the figure is the RSS holding the backlog, the note gives the fill's peak.
    const filling = await sampleUsage(broker.pid, () =>
      burst(ctx, broker, { procs: 4, count: n, batch: 1000, window: 2, warmup: 0 }),
    );
    const fill = filling.result;
    const fillSecs = (performance.now() - t0) / 1000;
    const status = await broker.status();
    await sleep(1000);
    const held = await sampleUsage(broker.pid, () => sleep(3000));
    await broker.stop();
    broker = await startServe(home, { steady: false });
    await sleep(2000);
    const restart = { readyMs: broker.readyMs, rss: procUsage(broker.pid).rss };
    return {
      n,
      fill,
      fillPeak: filling.peakRss,
      fillSecs,
      pending: status.outbox.pendingMessages,
      held,
      restart,
    };
  } finally {
    await broker.stop();
    rmSync(home.dir, { recursive: true, force: true }); // a 1M backlog is ~1 GB on disk per repetition
  }
}

/** "a" or "a-b" (min-max) of the repetitions' values, rounded. */
function span(values, digits = 0) {
  const lo = Math.min(...values).toFixed(digits);
  const hi = Math.max(...values).toFixed(digits);
  return lo === hi ? lo : `${lo}-${hi}`;
}

// Every figure is repeated (ctx.reps): a fresh broker per idle/load repetition, and a fresh 1M backlog
// filled, held and restarted once per backlog repetition.
export async function run(ctx) {
  const il = await repeat(ctx.reps, () => idleAndLoad(ctx));
  const bs = await repeat(ctx.reps, () => backlog(ctx));
  const n = bs[0].n;
  const k = n >= 1_000_000 ? `${n / 1_000_000}M` : `${Math.round(n / 1000)}k`;
  // The backlog figures judge the RSS of `n` pending messages: the broker's own count (status, read right
  // after the fill) must reach it, else they measured a smaller backlog and are not met, whatever the RSS.
  const fills = loadErrors(bs.map((b) => b.fill));
  const short = bs.filter((b) => b.pending < n);
  const backlogProblems = short.length
    ? [
        `only ${span(short.map((b) => b.pending))} of ${n} messages pending in ${short.length} of ${bs.length} repetitions (status().outbox.pendingMessages after the fill)`,
      ]
    : [];
  const backlogOk = { problems: backlogProblems, ...fills };
  return [
    figure({
      figure: "footprint.idle_rss",
      values: il.map((r) => r.idle.peakRss / MB),
      unit: "MB",
      note: `idle CPU ${span(
        il.map((r) => r.idle.cpuPct),
        1,
      )}% of one core over ${il[0].idle.secs.toFixed(0)} s`,
    }),
    figure({ figure: "footprint.idle_cpu", values: il.map((r) => r.idle.cpuPct), unit: "% core" }),
    figure({
      figure: "footprint.load_rss",
      values: il.map((r) => r.load.peakRss / MB),
      unit: "MB",
      ...loadErrors(il.map((r) => r.load.result)),
      note: `peak RSS while 8 processes publish one at a time (${span(il.map((r) => r.load.result.rate))} msg/s acked)`,
    }),
    figure({
      figure: "footprint.load_cpu",
      values: il.map((r) => r.load.cpuPct),
      unit: "% core",
      ...loadErrors(il.map((r) => r.load.result)),
      note: "broker CPU under the 8-process load",
    }),
    figure({
      figure: `footprint.backlog_${k}_rss`,
      values: bs.map((b) => b.held.peakRss / MB),
      unit: "MB",
      target: { kind: "value<", x: 150 },
      ...backlogOk,
      note: `peak RSS over 3 s right after accepting them: ${span(bs.map((b) => b.pending))} pending messages by the broker's status (forward sink to a dead endpoint); filled by 4 processes with requests of 1000, 2 in flight each, at ${span(bs.map((b) => b.pending / b.fillSecs))} msg/s; peak during the fill ${span(
        bs.map((b) => b.fillPeak / MB),
        1,
      )} MB`,
    }),
    figure({
      figure: `footprint.backlog_${k}_rss_after_restart`,
      values: bs.map((b) => b.restart.rss / MB),
      unit: "MB",
      target: { kind: "value<", x: 150 },
      ...backlogOk,
      note: "RSS 2 s after a restart with the backlog still pending (nothing loaded into memory)",
    }),
    figure({
      figure: `footprint.backlog_${k}_restart_ready`,
      values: bs.map((b) => b.restart.readyMs),
      unit: "ms",
      target: { kind: "value<", x: 2000 },
      ...backlogOk,
      note: "from spawning `herald serve` to its first answered ping, with the backlog pending",
    }),
  ];
}
