// Figure group 4: batch submit (100 messages per request, WINDOW requests in flight) against raw
// pipelined DEALER/ROUTER with the same window of requests in flight (one message per raw request).
import { figure } from "../lib/figure.mjs";
import { runJson } from "../lib/procs.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { median, medianOf, repeat } from "../lib/util.mjs";
import { refs } from "./raw.mjs";

export const BATCH = 100;
export const WINDOW = 8;
const PUB = new URL("../workers/herald-pub.mjs", import.meta.url).pathname;

function load(ctx, broker, reps = ctx.reps) {
  return repeat(reps, () =>
    runJson(process.execPath, [
      PUB,
      "--connect",
      broker.submit,
      "--count",
      String(ctx.n(100_000, 10_000)),
      "--batch",
      String(BATCH),
      "--window",
      String(WINDOW),
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

export async function run(ctx) {
  const raw = await refs.pipelined(ctx, WINDOW);
  const broker = await startServe(await newBrokerHome());
  let herald;
  try {
    herald = await load(ctx, broker);
  } finally {
    await broker.stop();
  }
  const errors = herald.reduce((a, r) => a + r.errors, 0);
  return [
    figure({
      figure: "batch.100x8_vs_raw_pipelined",
      values: herald.map((r) => r.rate),
      unit: "msg/s",
      reference: { name: `raw DEALER/ROUTER, ${WINDOW} in flight`, value: median(raw.map((r) => r.rate)) },
      target: { kind: "ratio>=", x: 0.5 },
      p50_us: medianOf(herald, "p50_us"),
      p99_us: medianOf(herald, "p99_us"),
      profileGroup: "batch",
      note: `herald: ${BATCH} msgs/request, ${WINDOW} requests in flight, one client process; latency per request${errors ? `; ${errors} errors` : ""}`,
    }),
  ];
}
