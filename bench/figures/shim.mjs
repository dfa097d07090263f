// Figure group 10: the migration shim. A legacy (fedmsg-format) publisher binds its PUB as in fedmsg;
// `herald serve` with the shim (service at stage "legacy") ingests it; herald subscribers read the
// broker's herald socket. Reference: a direct legacy PUB -> SUB link with the same messages.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import { figure, notMeasured } from "../lib/figure.mjs";
import { freePorts, nodeWorker } from "../lib/procs.mjs";
import { collectFrom, rawPubSub } from "../lib/raw.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { DIST, medianOf, repeat } from "../lib/util.mjs";

const PREFIX = "org.example.dev.benchsvc";

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
  const [legacyPort, directPort] = await freePorts(2);
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
        services: { "benchsvc.bench": { stage: "legacy", endpoints: [`tcp://127.0.0.1:${legacyPort}`] } },
      },
    }),
  );
  home.env.HERALD_CONFIG = file;
  const broker = await startServe(home);
  let herald;
  try {
    herald = await repeat(ctx.reps, async () => {
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
  } finally {
    await broker.stop();
  }
  const direct = await rawPubSub(ctx.reps, { count, subs: 1, port: directPort, legacy: PREFIX });
  const worst = Math.min(...herald.map((h) => h.minReceived));
  return [
    figure({
      figure: "shim.legacy_pub_to_herald_sub",
      values: herald.map((h) => h.rate),
      unit: "msg/s",
      reference: { name: "direct legacy PUB -> SUB", value: medianOf(direct, "rate") },
      p50_us: medianOf(herald, "p50_us"),
      p99_us: medianOf(herald, "p99_us"),
      note: `fedmsg-format PUB (bound, sent flat out) -> shim in herald serve (ingest, durable) -> herald socket -> 1 SUB; worst run got ${worst}/${count}; direct link p50 ${medianOf(direct, "p50_us")} us p99 ${medianOf(direct, "p99_us")} us; herald publisher -> legacy subscriber not measured yet`,
    }),
  ];
}
