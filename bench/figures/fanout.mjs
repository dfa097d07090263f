// Figure group 5: fan-out. herald submit -> subscriber throughput and latency with S subscribers on the
// herald socket and S on the legacy socket at once, against a raw zeromq.js PUB of the same-size JSON
// envelopes to the same total number of SUB sockets.
import { figure, loadErrors } from "../lib/figure.mjs";
import { nodeWorker } from "../lib/procs.mjs";
import { collectFrom } from "../lib/raw.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { medianOf, repeat } from "../lib/util.mjs";
import { refs, worstDelivered } from "./raw.mjs";

/**
 * A herald client submitting `count` messages (batches of 100, 4 in flight) once told to go; until then it
 * publishes probes so subscribers can prove their link (slow joiner). `extra`: more herald-pub.mjs options.
 */
export function probingPublisher(broker, count, extra = []) {
  return nodeWorker("herald-pub.mjs", [
    "--connect",
    broker.submit,
    "--count",
    String(count),
    "--batch",
    "100",
    "--window",
    "4",
    "--barrier",
    "--probe",
    ...extra,
  ]);
}

async function heraldFanout(ctx, broker, subs, count) {
  return repeat(ctx.reps, async () => {
    const pub = probingPublisher(broker, count);
    try {
      await pub.waitLine((l) => l.ready, 120_000);
      const got = await collectFrom(
        [
          [broker.pub.herald, subs],
          [broker.pub.legacy, subs],
        ],
        count,
        () => pub.send("go"),
      );
      const sent = await pub.waitLine((l) => l.count !== undefined, 300_000);
      return { ...got, submitRate: sent.rate, errors: sent.errors, firstError: sent.firstError };
    } finally {
      pub.kill();
    }
  });
}

export async function run(ctx) {
  const count = ctx.n(20_000, 3000);
  const sizes = ctx.quick ? [1, 10] : [1, 50];
  const broker = await startServe(await newBrokerHome());
  const out = [];
  try {
    for (const subs of sizes) {
      const herald = await heraldFanout(ctx, broker, subs, count);
      const raw = await refs.pubsub(ctx, subs * 2, count);
      const worst = Math.min(...herald.map((h) => h.minReceived));
      const rawWorst = Math.min(...raw.map((h) => h.minReceived));
      out.push(
        figure({
          figure: `fanout.${subs}+${subs}_subs`,
          values: herald.map((h) => h.rate),
          unit: "msg/s",
          reference: { name: `raw PUB -> ${subs * 2} SUB`, value: medianOf(raw, "rate") },
          p50_us: medianOf(herald, "p50_us"),
          p99_us: medianOf(herald, "p99_us"),
          // A receive rate over what arrived: compared only when both sides delivered everything.
          delivered: worstDelivered(herald),
          referenceDelivered: worstDelivered(raw),
          ...loadErrors(herald),
          note: `${subs} SUB on the herald socket + ${subs} on the legacy socket; receive rate of the slowest socket over the messages it got, latency submit->receive; worst socket got ${worst}/${count} (raw ${rawWorst}/${count}); raw p50 ${medianOf(raw, "p50_us")} us p99 ${medianOf(raw, "p99_us")} us; raw latency is under a PUB sending flat out (queueing), herald's under the submit rate; submitter ran at ${Math.round(medianOf(herald, "submitRate"))} msg/s acked (requests of 100, 4 in flight)`,
        }),
      );
    }
  } finally {
    await broker.stop();
  }
  return out;
}
