// Figure group 1: the raw limits of this machine in this run (no herald): zeromq.js round trips,
// pipelined DEALER/ROUTER, PUB/SUB of JSON envelopes, fsync of a small append.
import { figure } from "../lib/figure.mjs";
import { freePorts } from "../lib/procs.mjs";
import { fsyncReps, rawPubSub, rawRoundTrips } from "../lib/raw.mjs";
import { medianOf } from "../lib/util.mjs";

export const PIPE_WINDOW = 100;

/** Shared with the herald figures: each reference is measured once per run. */
export const refs = {
  roundTrip: (ctx) =>
    ctx.memo("raw.rr", () => rawRoundTrips(ctx.reps, { count: ctx.n(5000, 500), window: 1 })),
  pipelined: (ctx, window = PIPE_WINDOW) =>
    ctx.memo(`raw.pipe.${window}`, () => rawRoundTrips(ctx.reps, { count: ctx.n(30_000, 3000), window })),
  fsync: (ctx) => ctx.memo("raw.fsync", () => fsyncReps(ctx.reps, ctx.n(300, 50))),
  pubsub: (ctx, subs = 1, count = ctx.n(100_000, 10_000)) =>
    ctx.memo(`raw.pubsub.${subs}.${count}`, async () => {
      const [port] = await freePorts(1);
      return rawPubSub(ctx.reps, { count, subs, port });
    }),
};

export async function run(ctx) {
  const rr = await refs.roundTrip(ctx);
  const pipe = await refs.pipelined(ctx);
  const pubsub = await refs.pubsub(ctx);
  const fsync = await refs.fsync(ctx);
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
  ];
}
