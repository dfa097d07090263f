// Figure group 10: the migration shim, both directions, in one `herald serve` with the shim inside.
// - legacy -> herald: a legacy (fedmsg-format) publisher binds its PUB as in fedmsg; the shim (service
//   `benchsvc.bench` at stage "legacy") ingests it durably; herald subscribers read the broker's herald socket.
// - herald -> legacy: a herald client submits (IPC, acked after fsync) messages of service `heraldsvc.bench`
//   at stage "bridged"; the shim binds that service's old port (from its fedmsg endpoint config) and serves
//   them there in fedmsg framing; an old-style SUB connected to that port reads them.
// Reference for both: a direct legacy PUB -> SUB link with the same messages, measured in the same run.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { figure, notMeasured } from "../lib/figure.mjs";
import { freePorts, nodeWorker } from "../lib/procs.mjs";
import { collectFrom, rawPubSub } from "../lib/raw.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { DIST, medianOf, repeat } from "../lib/util.mjs";
import { probingPublisher } from "./fanout.mjs";
import { worstDelivered } from "./raw.mjs";

const PREFIX = "org.example.dev.benchsvc";
// The bridged service's topics: <topicPrefix>.<environment>.<module>.… with module "heraldsvc".
const HERALD_PREFIX = "org.example.dev.heraldsvc";

/** legacy PUB (bound) -> shim ingest -> broker -> herald PUB -> 1 SUB. */
async function legacyToHerald(ctx, broker, legacyPort, count) {
  return repeat(ctx.reps, async () => {
    const pub = nodeWorker("raw-pub.mjs", [
      "--bind",
      `tcp://127.0.0.1:${legacyPort}`,
      "--count",
      String(count),
      "--legacy",
      PREFIX,
    ]);
    try {
      await pub.waitLine((l) => l.bound);
      return await collectFrom([[broker.pub.herald, 1]], count, () => pub.send("go"));
    } finally {
      pub.kill();
      await pub.exited;
    }
  });
}

/**
 * herald client (batches of 100, 4 in flight, acked) -> broker -> shim sink -> the bridged service's old
 * port -> 1 legacy SUB. The publisher probes on the service's own topic while it waits at its barrier, so
 * the SUB is known to be connected and served (slow joiner, the shim's held-message settle) before the
 * measured messages start.
 */
async function heraldToLegacy(ctx, broker, bridgedEndpoint, count) {
  return repeat(ctx.reps, async () => {
    const pub = probingPublisher(broker, count, [
      "--topic",
      `${HERALD_PREFIX}.bench.data`,
      "--probe-topic",
      `${HERALD_PREFIX}.bench.probe`,
    ]);
    try {
      await pub.waitLine((l) => l.ready, 120_000);
      const got = await collectFrom([[bridgedEndpoint, 1]], count, () => pub.send("go"));
      const sent = await pub.waitLine((l) => l.count !== undefined, 300_000);
      if (sent.errors) throw new Error(`herald publisher: ${sent.errors} submit errors (${sent.firstError})`);
      return { ...got, submitRate: sent.rate };
    } finally {
      pub.kill();
      await pub.exited;
    }
  });
}

export async function run(ctx) {
  let shim;
  try {
    shim = await import(`${DIST}/shim/index.js`);
  } catch {
    shim = undefined;
  }
  if (typeof shim?.startShim !== "function")
    return [
      notMeasured("shim", "not measured yet: the shim is being built (no startShim in dist/shim/index.js)"),
    ];
  const count = ctx.n(20_000, 3000);
  const [legacyPort, bridgedPort, directPort] = await freePorts(3);
  const bridgedEndpoint = `tcp://127.0.0.1:${bridgedPort}`;
  const home = await newBrokerHome();
  const file = join(home.dir, "herald.yaml");
  writeFileSync(
    file,
    stringify({
      legacy: {
        enabled: true,
        topicPrefix: "org.example",
        environment: "dev",
        grace: "1s",
        services: {
          "benchsvc.bench": { stage: "legacy", endpoints: [`tcp://127.0.0.1:${legacyPort}`] },
          "heraldsvc.bench": { stage: "bridged", endpoints: [bridgedEndpoint] },
        },
      },
    }),
  );
  home.env.HERALD_CONFIG = file;
  const broker = await startServe(home);
  let herald;
  let legacy;
  try {
    herald = await legacyToHerald(ctx, broker, legacyPort, count);
    legacy = await heraldToLegacy(ctx, broker, bridgedEndpoint, count);
  } finally {
    await broker.stop();
  }
  const direct = await rawPubSub(ctx.reps, { count, subs: 1, port: directPort, legacy: PREFIX });
  const reference = { name: "direct legacy PUB -> SUB", value: medianOf(direct, "rate") };
  const directLatency = `direct link p50 ${medianOf(direct, "p50_us")} us p99 ${medianOf(direct, "p99_us")} us (a PUB sending flat out: queueing)`;
  const worst = (reps) => Math.min(...reps.map((h) => h.minReceived));
  // Receive rates over what arrived: a ratio only when both sides delivered every message.
  const directDelivered = worstDelivered(direct);
  return [
    figure({
      figure: "shim.legacy_pub_to_herald_sub",
      values: herald.map((h) => h.rate),
      unit: "msg/s",
      reference,
      p50_us: medianOf(herald, "p50_us"),
      p99_us: medianOf(herald, "p99_us"),
      delivered: worstDelivered(herald),
      referenceDelivered: directDelivered,
      note: `fedmsg-format PUB (bound, sent flat out) -> shim in herald serve (ingest, durable) -> herald socket -> 1 SUB; worst run got ${worst(herald)}/${count}; ${directLatency}`,
    }),
    figure({
      figure: "shim.herald_pub_to_legacy_sub",
      values: legacy.map((h) => h.rate),
      unit: "msg/s",
      reference,
      p50_us: medianOf(legacy, "p50_us"),
      p99_us: medianOf(legacy, "p99_us"),
      delivered: worstDelivered(legacy),
      referenceDelivered: directDelivered,
      note: `herald client (submit over IPC, requests of 100, 4 in flight, acked after fsync) -> broker -> shim sink -> bridged service's old port (bound by the shim from its endpoint config) -> 1 legacy SUB (fedmsg framing); latency submit->receive; worst run got ${worst(legacy)}/${count}; submitter ran at ${Math.round(medianOf(legacy, "submitRate"))} msg/s; ${directLatency}`,
    }),
  ];
}
