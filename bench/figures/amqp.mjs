// Figure group 6: AMQP. herald submit -> confirmed by RabbitMQ (sink cursor at head in `herald status`)
// against raw amqplib confirm publishing with the same window (256 unconfirmed), both into a durable
// queue bound for the topic; and the drain rate of a backlog filled while the sink pointed at a dead port.
import { randomBytes } from "node:crypto";
import amqp from "amqplib";
import { figure, loadErrors, notMeasured } from "../lib/figure.mjs";
import { freePorts, nodeWorker, runJson } from "../lib/procs.mjs";
import { boundQueue } from "../lib/rabbit.mjs";
import { newBrokerHome, startServe, waitStatus } from "../lib/serve.mjs";
import { AMQP_URL, median, nowMs, repeat, WARMUP } from "../lib/util.mjs";

const PUB = new URL("../workers/herald-pub.mjs", import.meta.url).pathname;
const RAW = new URL("../workers/raw-amqp.mjs", import.meta.url).pathname;
const WINDOW = 256;

export function sinkEnv(url) {
  return {
    HERALD_SINKS__0__NAME: "amqp",
    HERALD_SINKS__0__TYPE: "amqp",
    HERALD_SINKS__0__URL: url,
    HERALD_SINKS__0__IN_FLIGHT: String(WINDOW),
    HERALD_OUTBOX__MAX_MESSAGES: "3000000",
  };
}

const amqpSink = (s) => s.sinks.find((k) => k.name === "amqp");
const amqpLag = (s) => amqpSink(s)?.lag ?? Number.POSITIVE_INFINITY;

/** A durable queue bound to a fresh topic for the duration of `fn`. */
export async function withQueue(fn) {
  const topic = `bench.amqp.${randomBytes(4).toString("hex")}`;
  const queue = await boundQueue(topic);
  try {
    return await fn({ topic, purge: queue.purge });
  } finally {
    await queue.remove();
  }
}

export async function heraldRep(ctx, broker, topic) {
  const pub = nodeWorker("herald-pub.mjs", [
    "--connect",
    broker.submit,
    "--topic",
    topic,
    "--count",
    String(ctx.n(30_000, 3000)),
    "--batch",
    "100",
    "--window",
    "4",
    "--warmup",
    String(ctx.n(WARMUP, 500)),
    "--barrier",
  ]);
  try {
    await pub.waitLine((l) => l.ready, 60_000);
    await waitStatus(broker, (s) => amqpLag(s) === 0, 60_000, 50);
    pub.send("go");
    const res = await pub.waitLine((l) => l.count !== undefined, 600_000);
    const waited = await waitStatus(broker, (s) => amqpLag(s) === 0, 600_000, 20);
    if (waited === undefined) throw new Error("the AMQP sink never caught up");
    const end = nowMs() - 10; // half a poll step: the cursor reached head between two polls
    const skipped = amqpSink(await broker.status())?.skipped ?? 0;
    return {
      rate: (res.count - res.errors) / ((end - res.tStart) / 1000),
      errors: res.errors,
      firstError: res.firstError,
      skipped,
    };
  } finally {
    pub.kill();
  }
}

/**
 * The backlog: submitted while the sink pointed at a dead port, counted from the broker's status (what
 * the AMQP sink really has to deliver: refused submits are not in it); then a restart with the right URL,
 * timed from the spawn until the sink's cursor reaches head. `skipped`: messages the sink passed over
 * (counted by the broker in status().sinks[].skipped), which would otherwise pass for delivered.
 */
async function drain(ctx, topic) {
  const [deadPort] = await freePorts(1);
  const home = await newBrokerHome(sinkEnv(`amqp://guest:guest@127.0.0.1:${deadPort}/%2F`));
  const nominal = ctx.n(100_000, 10_000);
  let broker = await startServe(home);
  try {
    const fill = await runJson(process.execPath, [
      PUB,
      "--connect",
      broker.submit,
      "--topic",
      topic,
      "--count",
      String(nominal),
      "--batch",
      "1000",
      "--window",
      "4",
      "--warmup",
      "0",
    ]);
    const backlog = amqpLag(await broker.status());
    if (!Number.isFinite(backlog)) throw new Error("no amqp sink in the broker's status");
    await broker.stop();
    Object.assign(home.env, sinkEnv(AMQP_URL));
    broker = await startServe(home, { steady: false }); // the drain is timed from the spawn
    const ms = await waitStatus(broker, (s) => amqpLag(s) === 0, 600_000, 50);
    if (ms === undefined) throw new Error("backlog did not drain within 10 minutes");
    const skipped = amqpSink(await broker.status())?.skipped ?? 0;
    return {
      rate: (backlog - skipped) / ((ms + broker.readyMs) / 1000),
      backlog,
      nominal,
      skipped,
      errors: fill.errors,
      firstError: fill.firstError,
    };
  } finally {
    await broker.stop();
  }
}

/** One live repetition against a broker under --cpu-prof (bench/run.mjs calls this when the live figure misses). */
export async function profile(ctx, name) {
  await withQueue(async ({ topic }) => {
    const broker = await startServe(await newBrokerHome(sinkEnv(AMQP_URL)), { profileName: name });
    try {
      await heraldRep(ctx, broker, topic);
    } finally {
      await broker.stop();
    }
  });
}

export async function run(ctx) {
  try {
    const conn = await amqp.connect(AMQP_URL);
    ctx.versions.rabbitmqServer ??= {
      version: String(conn.connection.serverProperties?.version ?? "?"),
    };
    await conn.close();
  } catch (err) {
    return [notMeasured("amqp", `no RabbitMQ at ${AMQP_URL}: ${err.message}`)];
  }
  return withQueue(async ({ topic, purge }) => {
    const rawRep = async () => {
      const r = await runJson(process.execPath, [
        RAW,
        "--url",
        AMQP_URL,
        "--routing-key",
        topic,
        "--count",
        String(ctx.n(30_000, 3000)),
        "--window",
        String(WINDOW),
        "--warmup",
        String(ctx.n(WARMUP, 500)),
      ]);
      await purge();
      return r;
    };
    const raw = [];
    const herald = [];
    const broker = await startServe(await newBrokerHome(sinkEnv(AMQP_URL)));
    try {
      // Interleaved, each side first in every other round: RabbitMQ's rate drifts by 10-20% within a
      // run, and three raw repetitions followed by three herald ones measured the two at different times.
      for (let r = 0; r < ctx.reps; r++) {
        const heraldOne = async () => {
          herald.push(await heraldRep(ctx, broker, topic));
          await purge();
        };
        const rawOne = async () => raw.push(await rawRep());
        for (const step of r % 2 === 0 ? [rawOne, heraldOne] : [heraldOne, rawOne]) await step();
      }
    } finally {
      await broker.stop();
    }
    const d = await repeat(ctx.reps, async () => {
      const r = await drain(ctx, topic);
      await purge();
      return r;
    });
    const skipped = herald.reduce((a, r) => a + r.skipped, 0);
    const drainSkipped = d.reduce((a, r) => a + r.skipped, 0);
    const short = d.filter((r) => r.backlog < r.nominal);
    return [
      figure({
        figure: "amqp.submit_to_confirmed_vs_raw",
        profileGroup: "amqp",
        values: herald.map((r) => r.rate),
        unit: "msg/s",
        reference: {
          name: `raw amqplib confirms, ${WINDOW} in flight, herald's properties`,
          value: median(raw.map((r) => r.rate)),
        },
        target: { kind: "ratio>=", x: 0.8 },
        ...loadErrors(herald),
        problems: skipped ? [`the AMQP sink skipped ${skipped} messages (status().sinks[].skipped)`] : [],
        note: `herald: acked messages, submitted in requests of 100 (4 in flight; the client does not merge them), timed until the sink's cursor reached head (RabbitMQ confirmed all, durable queue bound), skipped 0 checked; sink inFlight ${WINDOW}; both sides after ${ctx.n(WARMUP, 500)} warm-up messages; the two sides' repetitions interleaved, each first in every other round`,
      }),
      figure({
        figure: "amqp.backlog_drain",
        values: d.map((r) => r.rate),
        unit: "msg/s",
        target: { kind: "value>=", x: Math.round(100_000 / 60) },
        ...loadErrors(d),
        problems: [
          ...(drainSkipped ? [`the AMQP sink skipped ${drainSkipped} messages while draining`] : []),
          ...(short.length
            ? [
                `backlog short of its ${d[0].nominal} messages in ${short.length} repetitions (${short.map((r) => r.backlog).join(", ")})`,
              ]
            : []),
        ],
        note: `${d.map((r) => r.backlog).join(", ")} messages pending for the sink (from status, nominal ${d[0].nominal}) stored while it pointed at a dead port, then a restart with the right URL: start + drain to a durable queue, rate = delivered (pending - skipped) / (start + drain), skipped ${drainSkipped} (target: 100k within 60 s)`,
      }),
    ];
  });
}
