// `npm run bench [-- --quick] [--only raw,single,...] [--backlog N] [--reps N] [--no-results]`
// Runs every figure group side by side with its references, prints one JSON line per figure and a
// table, appends a dated section to bench/RESULTS.md. See bench/README.md.
import { existsSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { notMeasured } from "./lib/figure.mjs";
import { machine, versions } from "./lib/machine.mjs";
import { sourceTree } from "./lib/peers.mjs";
import { isInterrupted, killAllChildren } from "./lib/procs.mjs";
import { topSelfTime } from "./lib/profile.mjs";
import { appendResults, printJsonLine, textTable } from "./lib/report.mjs";
import { OUT } from "./lib/util.mjs";

export const GROUPS = [
  "raw",
  "single",
  "multi",
  "batch",
  "fanout",
  "amqp",
  "cli",
  "footprint",
  "security",
  "shim",
];
const PROFILED = new Set(["single", "multi", "batch", "amqp", "cli"]);
/** Whose profile a group records: the broker's, except the one-shot CLI's own process. */
const PROFILED_PROCESS = { cli: "`herald publish`" };
/**
 * A standing explanation printed under each missed group's profile in RESULTS.md: what the profiled process
 * does per message and which figures of the same run to read the profile against. Nothing here depends on a
 * particular run (no times, no measured shares): the profile table above it is that run's evidence.
 */
const COMMENTS = {
  single:
    "With one caller the broker's work (decode, validate, a synchronous SQLite commit with fsync, reply, then the PUB sinks) and the client's alternate, so a publish costs their CPU time plus ZeroMQ's transit between the two processes and their I/O threads. Read the profile's SQLite/fsync share against raw.fsync_4k and the rest against raw.zmq_roundtrip_ipc of the same run; the client's own share is not in this profile (the broker's only).",
  multi:
    "Eight one-at-a-time callers share group commits, at most 8 messages per commit cycle; in the windowed figure each process's concurrent publishes also share requests. The eight client processes run on the same cores as the broker, so the broker's profile shows only its part of the limit.",
  batch:
    "With round trips amortised over 100 messages per request, what remains is the broker's per-message work (decode, validation, canonical JSON, SQLite insert, the reply's results, the PUB sinks); the raw reference of the same run carries the same frames with none of it.",
  amqp: "The AMQP sink publishes from a worker thread of its own (sinks[].thread); the broker's main thread still reads its pages (from disk once it falls behind) and encodes them, beside the submit path and both PUB sinks. RabbitMQ, the broker's two threads and the submitting process share the machine's cores; the profile covers the broker's main thread.",
  cli: "A one-shot process: Node's own start (cli.herald_publish_vs_node_bare_start of the same run) happens before the profiler runs and is not in the profile; the profile covers loading `herald publish`'s bundle (dist/bin/herald-publish.cjs: compile and evaluate, zeromq's native addon, the configuration with its generated validator), connecting, one round trip and exit.",
};

function parseArgs(argv) {
  const o = { quick: false, only: GROUPS, backlog: undefined, reps: undefined, results: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    if (a === "--quick") o.quick = true;
    else if (a === "--only")
      o.only = val()
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean);
    else if (a === "--backlog") o.backlog = positiveInt(a, val());
    else if (a === "--reps") o.reps = positiveInt(a, val());
    else if (a === "--no-results") o.results = false;
    else if (a === "--results") o.results = true;
    else if (a === "--no-profile") o.noProfile = true;
    else if (a === "--fedmsg-src" || a === "--fedora-messaging-src") o[a.slice(2)] = val();
    else if (a === "--help" || a === "-h") usage();
    else usage(`unknown option ${a}`);
  }
  try {
    o.fedmsgSrc = sourceTree("fedmsg-src", o["fedmsg-src"]);
    o.fedoraMessagingSrc = sourceTree("fedora-messaging-src", o["fedora-messaging-src"]);
  } catch (err) {
    usage(err.message);
  }
  const unknown = o.only.filter((g) => !GROUPS.includes(g));
  if (unknown.length)
    usage(`unknown figure group(s) ${unknown.join(", ")}: choose from ${GROUPS.join(", ")}`);
  return o;
}

/** A positive integer option value, or a usage error (exit 2): `--reps x` must not run 0 repetitions. */
function positiveInt(opt, v) {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1)
    usage(`${opt} needs a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Issue 6: "Each figure: at least 3 repetitions". */
const MIN_REPS = 3;

function usage(problem) {
  const text = `usage: npm run bench -- [--quick] [--only ${GROUPS.join(",")}] [--backlog N] [--reps N]
                       [--no-results | --results] [--no-profile]
                       [--fedmsg-src DIR] [--fedora-messaging-src DIR]`;
  if (problem) {
    process.stderr.write(`bench: ${problem}\n${text}\n`);
    process.exit(2);
  }
  process.stdout.write(`${text}\n`);
  process.exit(0);
}

function makeContext(o) {
  const memos = new Map();
  return {
    quick: o.quick,
    reps: o.reps ?? (o.quick ? 1 : 3),
    backlog: o.backlog ?? (o.quick ? 100_000 : 1_000_000),
    versions: {},
    /** Source trees of the real peers (bench/lib/peers.mjs), or undefined. */
    fedmsgSrc: o.fedmsgSrc,
    fedoraMessagingSrc: o.fedoraMessagingSrc,
    /** Default N, or the quick N with --quick. */
    n: (full, quick) => (o.quick ? quick : full),
    memo(key, fn) {
      if (!memos.has(key)) memos.set(key, fn());
      return memos.get(key);
    },
    log: (msg) => process.stderr.write(`bench: ${msg}\n`),
  };
}

async function runGroup(ctx, name) {
  const t0 = Date.now();
  ctx.log(`${name}: running`);
  try {
    const mod = await import(`./figures/${name}.mjs`);
    const recs = await mod.run(ctx);
    ctx.log(`${name}: done in ${Math.round((Date.now() - t0) / 1000)} s`);
    return recs;
  } catch (err) {
    ctx.log(`${name}: failed: ${err.stack ?? err}`);
    return [
      notMeasured(
        name,
        `the run failed: ${String(err.message ?? err)
          .split("\n")[0]
          .slice(0, 300)}`,
      ),
    ];
  }
}

async function profiles(ctx, records, stamp) {
  const out = [];
  const missed = records.filter((r) => r.met === false && PROFILED.has(r.profile_group));
  for (const group of new Set(missed.map((r) => r.profile_group))) {
    const name = `${group}-${stamp}`;
    const file = join(OUT, `${name}.cpuprofile`);
    const entry = {
      group,
      file: `bench/out/${name}.cpuprofile`,
      figures: missed.filter((r) => r.profile_group === group).map((r) => r.figure),
      comment: COMMENTS[group],
    };
    const who = PROFILED_PROCESS[group] ?? "the broker";
    entry.process = who;
    ctx.log(`${group}: missed a target, recording a CPU profile of ${who}`);
    try {
      const mod = await import(`./figures/${group}.mjs`);
      await mod.profile(ctx, name);
      if (!existsSync(file)) throw new Error(`no profile written (${who} did not exit cleanly)`);
      entry.top = topSelfTime(file, 10);
      process.stdout.write(`\nwhere the time goes in ${who} (${group}, top 10 self time):\n`);
      for (const t of entry.top)
        process.stdout.write(`  ${String(t.ms).padStart(7)} ms ${String(t.pct).padStart(5)}%  ${t.fn}\n`);
    } catch (err) {
      entry.error = String(err.message ?? err).slice(0, 300);
      ctx.log(`${group}: profile failed: ${entry.error}`);
    }
    out.push(entry);
  }
  return out;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const ctx = makeContext(o);
  // A full run with fewer repetitions than issue 6 asks for is a smoke test too: no RESULTS.md entry
  // unless --results says so.
  const fewReps = !o.quick && ctx.reps < MIN_REPS;
  if (fewReps)
    ctx.log(
      `warning: --reps ${ctx.reps} is below the ${MIN_REPS} repetitions issue 6 asks for per figure; ${o.results ? "appending to RESULTS.md anyway (--results)" : "not appending to RESULTS.md (pass --results to append)"}`,
    );
  const started = new Date();
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  ctx.log(`measuring the machine (fsync probe) and versions`);
  const m = machine();
  const v = await versions();
  const records = [];
  for (const g of GROUPS.filter((g) => o.only.includes(g))) {
    if (isInterrupted()) break;
    for (const r of await runGroup(ctx, g)) {
      printJsonLine(r);
      records.push(r);
    }
  }
  const profs = o.noProfile ? [] : await profiles(ctx, records, stamp);
  if (ctx.versions.rabbitmqServer && !v.rabbitmq) {
    const s = ctx.versions.rabbitmqServer;
    v.rabbitmq = `${s.version} (AMQP server properties)`;
  }
  if (ctx.versions.fedmsg) v.fedmsg = ctx.versions.fedmsg;
  if (ctx.versions.fedoraMessaging) v["fedora-messaging"] = ctx.versions.fedoraMessaging;
  process.stdout.write(`\n${textTable(records)}\n`);
  const loadEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const elapsedSec = (Date.now() - started.getTime()) / 1000;
  const write = o.results ?? !(o.quick || fewReps);
  if (write) {
    const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
    appendResults({
      started,
      elapsedSec,
      command,
      machine: m,
      versions: v,
      records,
      profiles: profs,
      loadEnd,
    });
    ctx.log("appended to bench/RESULTS.md");
  }
  ctx.log(`finished in ${Math.round(elapsedSec)} s; load average ${loadEnd.join(" / ")}`);
}

main()
  .catch((err) => {
    process.stderr.write(`bench: ${err.stack ?? err}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    killAllChildren();
    // zeromq sockets or timers left by a failed figure must not keep the runner alive.
    setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
  });
