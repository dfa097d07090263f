// Figure group 3: 8 concurrent publisher processes (group commit), each one message at a time, against
// fedmsg's fire-and-forget publish reproduced in Python (1 process, one SUB connected) in the same run,
// and fedmsg itself when `--fedmsg-src DIR` is given.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { figure, loadErrors, notMeasured } from "../lib/figure.mjs";
import { fedmsgPublish } from "../lib/peers.mjs";
import { nodeWorker, startChild, tempDir } from "../lib/procs.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { median, medianOf, PY, repeat, WARMUP } from "../lib/util.mjs";

export const PROCS = 8;
const WINDOW = 64;
const FIRE = new URL("../py/fedmsg_fire.py", import.meta.url).pathname;

/** One run of PROCS publisher processes started together; the aggregate acked rate. */
export function burst(ctx, broker, { procs = PROCS, count, batch = 1, window = 1, warmup } = {}) {
  const per = Math.ceil((count ?? ctx.n(16_000, 1600)) / procs);
  const args = ["--connect", broker.submit, "--count", String(per), "--batch", String(batch)];
  args.push("--window", String(window), "--barrier");
  if (warmup !== undefined) args.push("--warmup", String(warmup));
  return together(Array.from({ length: procs }, () => nodeWorker("herald-pub.mjs", args)));
}

/**
 * The same PROCS processes, one request at a time each, as raw zeromq.js DEALERs against a raw ROUTER that
 * answers at once (no parsing, no storage): how many one-at-a-time round trips the machine has at all.
 */
async function rawBurst(ctx, warmup) {
  const dir = tempDir("herald-bench-raw-");
  const router = nodeWorker("raw-router.mjs", ["--bind", `ipc://${join(dir, "raw.sock")}`]);
  try {
    const { ready } = await router.waitLine((l) => l.ready);
    const per = String(Math.ceil(ctx.n(16_000, 1600) / PROCS));
    const args = ["--connect", ready, "--count", per, "--warmup", String(warmup), "--barrier"];
    return await together(Array.from({ length: PROCS }, () => nodeWorker("raw-dealer.mjs", args)));
  } finally {
    router.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Start `workers` together at their barrier; the aggregate rate over the span from first start to last end. */
async function together(workers) {
  try {
    await Promise.all(workers.map((w) => w.waitLine((l) => l.ready)));
    for (const w of workers) w.send("go");
    const res = await Promise.all(workers.map((w) => w.waitLine((l) => l.count !== undefined, 600_000)));
    // Acknowledged messages only (each worker's errors are of its measured part, warm-up excluded).
    const total = res.reduce((a, r) => a + r.count - r.errors, 0);
    const span = (Math.max(...res.map((r) => r.tEnd)) - Math.min(...res.map((r) => r.tStart))) / 1000;
    return {
      rate: total / span,
      errors: res.reduce((a, r) => a + r.errors, 0),
      firstError: res.find((r) => r.firstError)?.firstError,
      p50_us: median(res.map((r) => r.p50_us)),
      p99_us: Math.max(...res.map((r) => r.p99_us)),
    };
  } finally {
    for (const w of workers) w.kill();
  }
}

export async function fedmsgFire(ctx) {
  return ctx.memo("py.fedmsg_fire", () =>
    repeat(ctx.reps, async () => {
      const py = startChild(PY, [FIRE, "--count", String(ctx.n(60_000, 6000)), "--subscribers", "1"]);
      let sub;
      try {
        const { bound } = await py.waitLine((l) => l.bound);
        sub = nodeWorker("sub-collect.mjs", ["--connect", bound, "--expect", "1000000000", "--noprobe"]);
        return await py.waitLine((l) => l.rate !== undefined, 300_000);
      } finally {
        sub?.kill();
        py.kill();
      }
    }),
  );
}

export async function profile(ctx, name) {
  const broker = await startServe(await newBrokerHome(), { profileName: name });
  try {
    await burst(ctx, broker, { warmup: ctx.n(WARMUP, 100) });
  } finally {
    await broker.stop();
  }
}

export async function run(ctx) {
  const fire = await fedmsgFire(ctx);
  const raw = await repeat(ctx.reps, () => rawBurst(ctx, ctx.n(WARMUP, 100)));
  const broker = await startServe(await newBrokerHome());
  let herald;
  let windowed;
  try {
    const warmup = ctx.n(WARMUP, 100);
    herald = await repeat(ctx.reps, () => burst(ctx, broker, { warmup }));
    // The same processes, each with many async callers in flight (what a busy web app's workers do):
    // this is where group commit pays, many messages share one fsync.
    windowed = await repeat(ctx.reps, () =>
      burst(ctx, broker, { window: WINDOW, count: ctx.n(64_000, 6400), warmup }),
    );
  } finally {
    await broker.stop();
  }
  const errors = loadErrors(herald);
  const windowErrors = loadErrors(windowed);
  const out = [
    figure({
      figure: "multi.8proc_vs_fedmsg_fire",
      values: herald.map((r) => r.rate),
      unit: "msg/s",
      reference: {
        name: "fedmsg fire-and-forget (python, 1 proc, 1 SUB)",
        value: median(fire.map((f) => f.rate)),
      },
      target: { kind: "ratio>=", x: 1.0 },
      p50_us: medianOf(herald, "p50_us"),
      p99_us: medianOf(herald, "p99_us"),
      ...errors,
      profileGroup: "multi",
      note: `${PROCS} processes, herald client one message at a time each, acked after fsync (group commit), after ${ctx.n(WARMUP, 100)} warm-up messages each`,
    }),
    figure({
      figure: "multi.8proc_window_vs_fedmsg_fire",
      values: windowed.map((r) => r.rate),
      unit: "msg/s",
      reference: {
        name: "fedmsg fire-and-forget (python, 1 proc, 1 SUB)",
        value: median(fire.map((f) => f.rate)),
      },
      target: { kind: "ratio>=", x: 1.0 },
      p50_us: medianOf(windowed, "p50_us"),
      p99_us: medianOf(windowed, "p99_us"),
      ...windowErrors,
      profileGroup: "multi",
      note: `${PROCS} processes x ${WINDOW} concurrent single-message publishes each (the client merges those made in the same tick into shared requests), acked after fsync (group commit), after ${ctx.n(WARMUP, 100)} warm-up messages each`,
    }),
  ];
  out.push(
    figure({
      figure: "multi.8proc_raw_roundtrips_vs_fedmsg_fire",
      values: raw.map((r) => r.rate),
      unit: "rt/s",
      reference: {
        name: "fedmsg fire-and-forget (python, 1 proc, 1 SUB)",
        value: median(fire.map((f) => f.rate)),
      },
      p50_us: medianOf(raw, "p50_us"),
      p99_us: medianOf(raw, "p99_us"),
      note: `the ceiling for figure 2's one-at-a-time form: ${PROCS} raw zeromq.js DEALER processes, one request at a time each, against a raw ROUTER that answers at once (no parsing, no storage, no fsync)`,
    }),
    figure({
      figure: "multi.8proc_vs_8proc_raw_roundtrips",
      values: herald.map((r) => r.rate),
      unit: "msg/s",
      reference: {
        name: `${PROCS} raw DEALER processes, one at a time`,
        value: median(raw.map((r) => r.rate)),
      },
      p50_us: medianOf(herald, "p50_us"),
      p99_us: medianOf(herald, "p99_us"),
      ...errors,
      note: "herald's one-at-a-time figure against that ceiling (durable and acknowledged against answered at once)",
    }),
  );
  if (ctx.fedmsgSrc) out.push(...(await vsFedmsgItself(ctx, herald, windowed)));
  return out;
}

/** The same herald runs against fedmsg.publish from the given source tree. */
async function vsFedmsgItself(ctx, herald, windowed) {
  let real;
  try {
    real = await fedmsgPublish(ctx);
  } catch (err) {
    // A broken tree costs these two figures, not the group's others.
    const why = `fedmsg failed: ${err.message.slice(0, 300)}`;
    return ["multi.8proc_vs_fedmsg_publish", "multi.8proc_window_vs_fedmsg_publish"].map((f) =>
      notMeasured(f, why),
    );
  }
  const reference = {
    name: "fedmsg.publish (source tree, 1 proc, 1 SUB)",
    value: median(real.map((f) => f.rate)),
  };
  const same = { unit: "msg/s", reference, target: { kind: "ratio>=", x: 1.0 }, profileGroup: "multi" };
  return [
    figure({
      ...same,
      figure: "multi.8proc_vs_fedmsg_publish",
      values: herald.map((r) => r.rate),
      ...loadErrors(herald),
      p50_us: medianOf(herald, "p50_us"),
      p99_us: medianOf(herald, "p99_us"),
      note: `as multi.8proc_vs_fedmsg_fire, against fedmsg itself (fedmsg.init binding one endpoint, fedmsg.publish, signing off)`,
    }),
    figure({
      ...same,
      figure: "multi.8proc_window_vs_fedmsg_publish",
      values: windowed.map((r) => r.rate),
      ...loadErrors(windowed),
      p50_us: medianOf(windowed, "p50_us"),
      p99_us: medianOf(windowed, "p99_us"),
      note: `as multi.8proc_window_vs_fedmsg_fire, against fedmsg itself`,
    }),
  ];
}
