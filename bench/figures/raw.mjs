// Figure group 1: the raw limits of this machine in this run (no herald): zeromq.js round trips,
// pipelined DEALER/ROUTER, PUB/SUB of JSON envelopes, fsync of a 4 KiB overwrite.
import { figure } from "../lib/figure.mjs";
import { freePorts } from "../lib/procs.mjs";
import { fsyncReps, rawPubSub, rawRoundTrips } from "../lib/raw.mjs";
import { median, medianOf, WARMUP } from "../lib/util.mjs";

export const PIPE_WINDOW = 100;

/**
 * Warm-up of the raw round-trip references, in messages: the same count the herald figure they are
 * compared with sends first (single: WARMUP, 50 with --quick), so both sides are measured after the same
 * number of messages through their JIT-compiled paths.
 */
export const rawWarmup = (ctx) => ctx.n(WARMUP, 50);

/** Shared with the herald figures: each reference is measured once per run. */
export const refs = {
  roundTrip: (ctx) =>
    ctx.memo("raw.rr", () =>
      rawRoundTrips(ctx.reps, { count: ctx.n(5000, 500), window: 1, warmup: rawWarmup(ctx) }),
    ),
  /**
   * `window` requests of `batch` messages in flight (the router acks each with `batch` results); `count`
   * and the warm-up in messages, as herald-pub counts them (rounded up to whole requests).
   */
  pipelined: (ctx, window = PIPE_WINDOW, { batch = 1, count = ctx.n(30_000, 3000), warmup } = {}) =>
    ctx.memo(`raw.pipe.${window}x${batch}.${count}`, () =>
      rawRoundTrips(ctx.reps, {
        count: Math.ceil(count / batch),
        window,
        batch,
        warmup: Math.ceil((warmup ?? rawWarmup(ctx)) / batch),
      }),
    ),
  fsync: (ctx) => ctx.memo("raw.fsync", () => fsyncReps(ctx.reps, ctx.n(300, 50))),
  /** The raw ROUTER overwrites and fsyncs 4 KiB before each reply: a durable round trip with no herald in it. */
  durableRoundTrip: (ctx) =>
    ctx.memo("raw.rr.fsync", () =>
      rawRoundTrips(ctx.reps, { count: ctx.n(3000, 300), window: 1, fsync: true, warmup: rawWarmup(ctx) }),
    ),
  pubsub: (ctx, subs = 1, count = ctx.n(100_000, 10_000)) =>
    ctx.memo(`raw.pubsub.${subs}.${count}`, async () => {
      const [port] = await freePorts(1);
      return rawPubSub(ctx.reps, { count, subs, port });
    }),
};

/**
 * Figure 1's physical limit, as issue 6 defines it: 1 / (raw round trip + fsync), in msg/s, with the same
 * statistic for both parts: the p50 of the raw one-at-a-time round trip plus the p50 of the fsync probe
 * (each the median of the repetitions' p50s). A mean round trip (1e6 / rate) added to a p50 fsync mixed
 * a tail-weighted mean with a median.
 */
export async function summedLimit(ctx) {
  const rtUs = medianOf(await refs.roundTrip(ctx), "p50_us");
  const fsyncUs = median((await refs.fsync(ctx)).map((f) => f.p50Us));
  return { rtUs, fsyncUs, limit: 1e6 / (rtUs + fsyncUs) };
}

export async function run(ctx) {
  const rr = await refs.roundTrip(ctx);
  const pipe = await refs.pipelined(ctx);
  const pubsub = await refs.pubsub(ctx);
  const fsync = await refs.fsync(ctx);
  const durable = await refs.durableRoundTrip(ctx);
  const sum = await summedLimit(ctx);
  return [
    figure({
      figure: "raw.zmq_roundtrip_ipc",
      values: rr.map((r) => r.rate),
      unit: "rt/s",
      p50_us: medianOf(rr, "p50_us"),
      p99_us: medianOf(rr, "p99_us"),
      note: `zeromq.js DEALER->ROUTER one request at a time over IPC (herald's one-message request and reply frames), after ${rawWarmup(ctx)} warm-up round trips`,
    }),
    figure({
      figure: `raw.zmq_pipelined_${PIPE_WINDOW}`,
      values: pipe.map((r) => r.rate),
      unit: "acks/s",
      p50_us: medianOf(pipe, "p50_us"),
      p99_us: medianOf(pipe, "p99_us"),
      note: `DEALER/ROUTER over IPC with ${PIPE_WINDOW} one-message requests in flight`,
    }),
    figure({
      figure: "raw.zmq_pubsub_json",
      values: pubsub.map((r) => r.rate),
      unit: "msg/s",
      p50_us: medianOf(pubsub, "p50_us"),
      p99_us: medianOf(pubsub, "p99_us"),
      delivered: worstDelivered(pubsub),
      note: `PUB->1 SUB over TCP loopback, JSON.stringify per message (~300 B); rate of what arrived: received ${Math.min(...pubsub.map((r) => r.minReceived))}/${pubsub[0]?.expected} at worst (HWM 10000 drops); latency includes queueing behind a PUB sending flat out`,
    }),
    figure({
      figure: "raw.fsync_4k",
      values: fsync.map((r) => r.p50Us),
      unit: "us",
      p50_us: medianOf(fsync, "p50Us"),
      p99_us: medianOf(fsync, "p99Us"),
      note: "write 4 KiB at offset 0 of one scratch file (an overwrite of the same block, not an append) + fsync, on the temp file system (measureFsync)",
    }),
    figure({
      figure: "raw.durable_roundtrip_vs_sum",
      values: durable.map((r) => r.rate),
      unit: "rt/s",
      reference: { name: "1/(raw rt p50 + fsync p50)", value: sum.limit },
      p50_us: medianOf(durable, "p50_us"),
      p99_us: medianOf(durable, "p99_us"),
      note: `the raw DEALER->ROUTER round trip with the router overwriting and fsyncing 4 KiB before each reply, measured as one thing, against the sum of the two p50s measured apart (figure 1's limit); below 1 when the parts do not add up on this machine`,
    }),
  ];
}

/** Worst repetition's worst socket, as {got, expected}, for figure()'s `delivered`. */
export function worstDelivered(reps) {
  return { got: Math.min(...reps.map((r) => r.minReceived)), expected: reps[0]?.expected ?? 0 };
}
