// A/B: the same load against two builds of the broker, alternating, in one run. Absolute numbers drift on a
// shared machine (other jobs, the disk); interleaving rounds makes the comparison fair to both.
// usage: node bench/ab.mjs --a <tree with dist/> [--b <tree>] [--load single|multi|multiWindow|batch|amqp] [--rounds N]
//   --b defaults to this tree. Prints one JSON line per round and a summary with the B/A ratio of medians.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { heraldRep, sinkEnv, withQueue } from "./figures/amqp.mjs";
import { burst } from "./figures/multi.mjs";
import { load as singleLoad } from "./figures/single.mjs";
import { killAllChildren, procUsage } from "./lib/procs.mjs";
import { newBrokerHome, startServe, treeCli } from "./lib/serve.mjs";
import { AMQP_URL, median, ROOT, WARMUP } from "./lib/util.mjs";

const { values } = parseArgs({
  options: {
    a: { type: "string" },
    b: { type: "string", default: ROOT },
    load: { type: "string", default: "single" },
    rounds: { type: "string", default: "5" },
  },
});
if (!values.a)
  throw new Error(
    "usage: node bench/ab.mjs --a <tree with dist/> [--b <tree>] [--load single|multi|multiWindow|batch|amqp]",
  );
const ctx = { quick: false, reps: 1, n: (full) => full };
const loads = {
  single: async (broker) => (await singleLoad(ctx, broker, 1))[0],
  multi: (broker) => burst(ctx, broker, { warmup: WARMUP }),
  multiWindow: (broker) => burst(ctx, broker, { window: 64, count: 32_000, warmup: WARMUP }),
  batch: (broker) => burst(ctx, broker, { procs: 1, batch: 100, window: 8, count: 100_000 }),
  // The AMQP figure's live load: submit, then time until RabbitMQ confirmed everything.
  amqp: (broker, topic) => heraldRep(ctx, broker, topic),
};
// The AMQP load needs the sink configured and a durable queue bound to its topic.
const homeEnv = values.load === "amqp" ? sinkEnv(AMQP_URL) : {};
const withTopic = values.load === "amqp" ? withQueue : (fn) => fn({ topic: undefined });
const run = loads[values.load];
if (!run) throw new Error(`--load must be one of ${Object.keys(loads).join(", ")}`);

const sides = { A: resolve(values.a), B: resolve(values.b) };
const got = { A: [], B: [] };
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const side of round % 2 === 0 ? ["A", "B"] : ["B", "A"]) {
      const home = await newBrokerHome(homeEnv);
      const broker = await startServe(home, { cli: treeCli(sides[side]) });
      try {
        const cpu0 = procUsage(broker.pid).cpuSec;
        const r = await withTopic(({ topic }) => run(broker, topic));
        const messages = (await broker.status()).outbox.headSeq;
        r.cpu_us_per_msg = Math.round(((procUsage(broker.pid).cpuSec - cpu0) * 1e6) / messages);
        got[side].push(r);
        console.log(
          JSON.stringify({
            round,
            side,
            rate: Math.round(r.rate),
            p50_us: r.p50_us,
            p99_us: r.p99_us,
            cpu_us_per_msg: r.cpu_us_per_msg,
          }),
        );
      } finally {
        await broker.stop();
      }
    }
  }
  const sum = (side) => ({
    rate: Math.round(median(got[side].map((r) => r.rate))),
    p50_us: median(got[side].map((r) => r.p50_us)),
    p99_us: median(got[side].map((r) => r.p99_us)),
    cpu_us_per_msg: median(got[side].map((r) => r.cpu_us_per_msg)),
  });
  const a = sum("A");
  const b = sum("B");
  console.log(
    JSON.stringify({
      load: values.load,
      A: { tree: sides.A, ...a },
      B: { tree: sides.B, ...b },
      rate_ratio_b_over_a: +(b.rate / a.rate).toFixed(3),
    }),
  );
} finally {
  killAllChildren();
}
