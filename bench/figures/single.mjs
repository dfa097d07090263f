// Figure group 2: one caller, durable acknowledged publish, one at a time.
// References from this run: the physical limit 1/(raw round trip + fsync), and fedora-messaging's
// pattern (pika, persistent, confirms, one at a time) against the local RabbitMQ; with
// `--fedora-messaging-src DIR`, fedora-messaging's api.publish itself.
import { figure, loadErrors, notMeasured } from "../lib/figure.mjs";
import { fedoraMessagingPublish } from "../lib/peers.mjs";
import { runJson } from "../lib/procs.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { AMQP_URL, median, medianOf, PY, repeat, WARMUP } from "../lib/util.mjs";
import { refs, summedLimit } from "./raw.mjs";

const PUB = new URL("../workers/herald-pub.mjs", import.meta.url).pathname;
const PIKA = new URL("../py/pika_confirm.py", import.meta.url).pathname;

export function load(ctx, broker, reps = ctx.reps) {
  const count = String(ctx.n(3000, 300));
  const warmup = String(ctx.n(WARMUP, 50));
  return repeat(reps, () =>
    runJson(process.execPath, [PUB, "--connect", broker.submit, "--count", count, "--warmup", warmup]),
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
  const { rtUs, fsyncUs, limit } = await summedLimit(ctx);
  const durable = await refs.durableRoundTrip(ctx);
  const broker = await startServe(await newBrokerHome());
  let herald;
  try {
    herald = await load(ctx, broker);
  } finally {
    await broker.stop();
  }
  const rates = herald.map((r) => r.rate);
  const lat = { p50_us: medianOf(herald, "p50_us"), p99_us: medianOf(herald, "p99_us") };
  // Every figure below is built from this load: each carries its errors (rates count acked messages only).
  const errors = loadErrors(herald);
  const out = [
    figure({
      figure: "single.durable_vs_limit",
      values: rates,
      unit: "msg/s",
      reference: { name: "1/(raw rt p50 + fsync p50)", value: limit },
      target: { kind: "ratio>=", x: 0.8 },
      ...lat,
      ...errors,
      profileGroup: "single",
      note: `raw rt p50 ${Math.round(rtUs)} us + fsync p50 ${Math.round(fsyncUs)} us (4 KiB overwrite); herald client one at a time over IPC, both after ${ctx.n(WARMUP, 50)} warm-up messages`,
    }),
  ];
  out.push(
    figure({
      figure: "single.durable_vs_raw_durable_rt",
      values: rates,
      unit: "msg/s",
      reference: {
        name: "raw DEALER->ROUTER, fsync 4 KiB per request",
        value: median(durable.map((r) => r.rate)),
      },
      ...lat,
      ...errors,
      note: `the same load against the durable round trip measured as one thing (raw.durable_roundtrip_vs_sum); raw p50 ${medianOf(durable, "p50_us")} us`,
    }),
  );
  out.push(await vsPika(ctx, rates, lat, errors));
  if (ctx.fedoraMessagingSrc) out.push(await vsFedoraMessaging(ctx, rates, lat, errors));
  out.push(
    figure({
      figure: "single.p99_latency",
      values: herald.map((r) => r.p99_us),
      unit: "us",
      target: { kind: "value<", x: 2000 },
      ...lat,
      ...errors,
      profileGroup: "single",
      note: "submit -> durable ack; value: the median of the per-repetition p99s, max: the worst repetition's p99, min: the best",
    }),
  );
  return out;
}

async function vsPika(ctx, rates, lat, errors) {
  let pika;
  try {
    pika = await repeat(ctx.reps, () =>
      runJson(PY, [PIKA, "--url", AMQP_URL, "--count", String(ctx.n(1500, 150))]),
    );
  } catch (err) {
    return notMeasured(
      "single.durable_vs_pika_confirm",
      `pika/RabbitMQ failed: ${err.message.slice(0, 200)}`,
    );
  }
  ctx.versions.rabbitmqServer ??= pika[0]?.server;
  return figure({
    figure: "single.durable_vs_pika_confirm",
    values: rates,
    unit: "msg/s",
    reference: { name: "pika confirm, persistent, one at a time", value: median(pika.map((p) => p.rate)) },
    target: { kind: "ratio>=", x: 4 },
    ...lat,
    ...errors,
    profileGroup: "single",
    note: `pika p50 ${medianOf(pika, "p50_us")} us, p99 ${medianOf(pika, "p99_us")} us`,
  });
}

/** Issue 6's own wording of figure 1: at least 7x fedora-messaging's `api.publish`. */
async function vsFedoraMessaging(ctx, rates, lat, errors) {
  let fm;
  try {
    fm = await fedoraMessagingPublish(ctx);
  } catch (err) {
    return notMeasured(
      "single.durable_vs_fedora_messaging_api",
      `fedora-messaging failed: ${err.message.slice(0, 300)}`,
    );
  }
  return figure({
    figure: "single.durable_vs_fedora_messaging_api",
    values: rates,
    unit: "msg/s",
    reference: {
      name: "fedora_messaging.api.publish (source tree), one at a time",
      value: median(fm.map((p) => p.rate)),
    },
    target: { kind: "ratio>=", x: 7 },
    ...lat,
    ...errors,
    profileGroup: "single",
    note: `api.publish p50 ${medianOf(fm, "p50_us")} us, p99 ${medianOf(fm, "p99_us")} us (persistent, confirmed, durable queue bound)`,
  });
}
