// Figure group 4: batch submit. herald: one client process, requests of BATCH messages, WINDOW requests in
// flight. Reference (issue 6: "at least 0.5x raw pipelined DEALER/ROUTER with the same window"): raw
// zeromq.js DEALER/ROUTER carrying the same frames, WINDOW requests of BATCH herald-encoded messages in
// flight, each acked at once by a ROUTER with a reply of BATCH results (no parsing, no storage); both
// sides compared in messages per second, after the same warm-up.
//
// The window is the one on the wire. HeraldClient merges submits made in the same tick into shared
// requests (src/client/coalesce.ts): with its default maxBatch, 8 lanes of 100 went out as requests of
// 700 and 100, at most 2 in flight. herald-pub.mjs therefore gives the client maxBatch = BATCH for this
// load, so each batch travels alone, as the raw DEALER sends it: both sides then differ only in what
// herald does per request and per message, which is what the ratio is meant to show. The worker reports
// the requests it sent and the most in flight; the note gives them.
import { figure, loadErrors } from "../lib/figure.mjs";
import { runJson } from "../lib/procs.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { median, medianOf, repeat, WARMUP } from "../lib/util.mjs";
import { refs } from "./raw.mjs";

export const BATCH = 100;
export const WINDOW = 8;
const PUB = new URL("../workers/herald-pub.mjs", import.meta.url).pathname;

const count = (ctx) => ctx.n(100_000, 10_000);
/** Messages before the measured ones, on both sides: WARMUP (2,000 = 20 requests of 100), 500 with --quick. */
const warmup = (ctx) => ctx.n(WARMUP, 500);

function load(ctx, broker, reps = ctx.reps) {
  return repeat(reps, () =>
    runJson(process.execPath, [
      PUB,
      "--connect",
      broker.submit,
      "--count",
      String(count(ctx)),
      "--batch",
      String(BATCH),
      "--window",
      String(WINDOW),
      "--warmup",
      String(warmup(ctx)),
    ]),
  );
}

export async function profile(ctx, name) {
  const broker = await startServe(await newBrokerHome(), { profileName: name });
  try {
    await load(ctx, broker, 1);
  } finally {
    await broker.stop();
  }
}

/** "a" or "a-b" over the repetitions. */
function span(values) {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

export async function run(ctx) {
  const same = await refs.pipelined(ctx, WINDOW, {
    batch: BATCH,
    count: count(ctx),
    warmup: warmup(ctx),
  });
  const single = await refs.pipelined(ctx, WINDOW, { count: ctx.n(30_000, 3000) });
  const broker = await startServe(await newBrokerHome());
  let herald;
  try {
    herald = await load(ctx, broker);
  } finally {
    await broker.stop();
  }
  const errors = loadErrors(herald);
  const wire = `on the wire: ${span(herald.map((r) => r.requests))} requests per repetition, at most ${span(herald.map((r) => r.maxInFlight))} in flight (client maxBatch ${BATCH}: no coalescing of batches)`;
  const lat = { p50_us: medianOf(herald, "p50_us"), p99_us: medianOf(herald, "p99_us") };
  return [
    figure({
      figure: `batch.${BATCH}x${WINDOW}_vs_raw_same_frames`,
      values: herald.map((r) => r.rate),
      unit: "msg/s",
      reference: {
        name: `raw DEALER/ROUTER, ${WINDOW} requests of ${BATCH} msgs in flight`,
        value: median(same.map((r) => r.msgRate)),
      },
      target: { kind: "ratio>=", x: 0.5 },
      ...lat,
      ...errors,
      profileGroup: "batch",
      note: `msg/s against msg/s: herald acked messages, ${BATCH} per request, ${WINDOW} requests in flight, one client process over IPC; the raw DEALER sends the same herald-encoded requests and its ROUTER answers each at once with ${BATCH} results (raw p50 ${medianOf(same, "p50_us")} us per request); ${wire}; both after ${warmup(ctx)} warm-up messages; latency per request`,
    }),
    figure({
      figure: `batch.${BATCH}x${WINDOW}_msgs_vs_raw_1msg_requests_info`,
      values: herald.map((r) => r.rate),
      unit: "msg/s",
      reference: {
        name: `raw DEALER/ROUTER, ${WINDOW} one-message requests in flight (requests/s)`,
        value: median(single.map((r) => r.rate)),
      },
      ...lat,
      ...errors,
      note: `informational, no target: herald's batched messages per second against raw one-message requests per second with the same ${WINDOW} in flight, i.e. what batching buys over unbatched requests; not issue 6's figure 3 (that is batch.${BATCH}x${WINDOW}_vs_raw_same_frames)`,
    }),
  ];
}
