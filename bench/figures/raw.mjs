// Figure group 1: the raw limits of this machine in this run (no herald): zeromq.js round trips,
// pipelined DEALER/ROUTER, PUB/SUB of JSON envelopes, fsync of a small append.
import { figure } from "../lib/figure.mjs";
import { freePorts } from "../lib/procs.mjs";
import { fsyncReps, rawPubSub, rawRoundTrips } from "../lib/raw.mjs";
import { median, medianOf } from "../lib/util.mjs";

export const PIPE_WINDOW = 100;

/** Shared with the herald figures: each reference is measured once per run. */
export const refs = {
  roundTrip: (ctx) =>
    ctx.memo("raw.rr", () => rawRoundTrips(ctx.reps, { count: ctx.n(5000, 500), window: 1 })),
  pipelined: (ctx, window = PIPE_WINDOW) =>
    ctx.memo(`raw.pipe.${window}`, () => rawRoundTrips(ctx.reps, { count: ctx.n(30_000, 3000), window })),
  fsync: (ctx) => ctx.memo("raw.fsync", () => fsyncReps(ctx.reps, ctx.n(300, 50))),
  /** The raw ROUTER fsyncs 4 KiB before each reply: a durable round trip with no herald in it. */
  durableRoundTrip: (ctx) =>
    ctx.memo("raw.rr.fsync", () =>
      rawRoundTrips(ctx.reps, { count: ctx.n(3000, 300), window: 1, fsync: true }),
    ),
  pubsub: (ctx, subs = 1, count = ctx.n(100_000, 10_000)) =>
    ctx.memo(`raw.pubsub.${subs}.${count}`, async () => {
      const [port] = await freePorts(1);
      return rawPubSub(ctx.reps, { count, subs, port });
    }),
};

/** Figure 1's physical limit, as issue 6 defines it: 1 / (raw round trip + fsync p50), in msg/s. */
export async function summedLimit(ctx) {
  const rtUs = 1e6 / median((await refs.roundTrip(ctx)).map((r) => r.rate));
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
      note: "zeromq.js DEALER->ROUTER one request at a time over IPC (herald's one-message request frames)",
    }),
    figure({
      figure: `raw.zmq_pipelined_${PIPE_WINDOW}`,
      values: pipe.map((r) => r.rate),
      unit: "acks/s",
      p50_us: medianOf(pipe, "p50_us"),
      p99_us: medianOf(pipe, "p99_us"),
      note: `DEALER/ROUTER over IPC with ${PIPE_WINDOW} requests in flight`,
    }),
    figure({
      figure: "raw.zmq_pubsub_json",
      values: pubsub.map((r) => r.rate),
      unit: "msg/s",
      p50_us: medianOf(pubsub, "p50_us"),
      p99_us: medianOf(pubsub, "p99_us"),
      note: `PUB->1 SUB over TCP loopback, JSON.stringify per message (~300 B); received ${Math.min(...pubsub.map((r) => r.minReceived))}/${pubsub[0]?.expected} at worst (HWM 10000 drops); latency includes queueing behind a PUB sending flat out`,
    }),
    figure({
      figure: "raw.fsync_4k",
      values: fsync.map((r) => r.p50Us),
      unit: "us",
      p50_us: medianOf(fsync, "p50Us"),
      p99_us: medianOf(fsync, "p99Us"),
      note: "write 4 KiB + fsync on the temp file system (measureFsync)",
    }),
    figure({
      figure: "raw.durable_roundtrip_vs_sum",
      values: durable.map((r) => r.rate),
      unit: "rt/s",
      reference: { name: "1/(raw rt + fsync p50)", value: sum.limit },
      p50_us: medianOf(durable, "p50_us"),
      p99_us: medianOf(durable, "p99_us"),
      note: `the raw DEALER->ROUTER round trip with the router writing and fsyncing 4 KiB before each reply, measured as one thing, against the sum of the two measured apart (figure 1's limit); below 1 when the parts do not add up on this machine`,
    }),
  ];
}
