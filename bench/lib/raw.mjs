// Raw limits measured in this run: zeromq.js round trips (no herald), fsync of a 4 KiB overwrite, PUB/SUB.
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { measureFsync } from "../../dist/storage/fsync-probe.js";
import { nodeWorker, runJson, tempDir } from "./procs.mjs";
import { repeat } from "./util.mjs";

/**
 * DEALER round trips against a raw ROUTER child over IPC; one result per repetition. `count` and `warmup`
 * are requests of `batch` messages each; the router's ack holds `batch` results, as herald's reply does.
 * `fsync`: the router overwrites 4 KiB in the temp directory and fsyncs it before each reply (a durable
 * round trip, no herald).
 */
export async function rawRoundTrips(reps, { count, window = 1, batch = 1, fsync = false, warmup }) {
  const dir = tempDir("herald-bench-raw-");
  const durable = fsync ? ["--fsync", dir] : [];
  const router = nodeWorker("raw-router.mjs", [
    "--bind",
    `ipc://${join(dir, "raw.sock")}`,
    "--ack-results",
    String(batch),
    ...durable,
  ]);
  try {
    const { ready } = await router.waitLine((l) => l.ready);
    return await repeat(reps, () =>
      runJson(process.execPath, [
        new URL("../workers/raw-dealer.mjs", import.meta.url).pathname,
        "--connect",
        ready,
        "--count",
        String(count),
        "--window",
        String(window),
        "--batch",
        String(batch),
        ...(warmup !== undefined ? ["--warmup", String(warmup)] : []),
      ]),
    );
  } finally {
    router.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * measureFsync: write 4 KiB at offset 0 of one scratch file (an overwrite of the same block, not an append)
 * and fsync, on the temp file system (where the brokers' outboxes live).
 */
export function fsyncReps(reps, samples) {
  return Array.from({ length: reps }, () => measureFsync(tmpdir(), samples));
}

/**
 * A raw zeromq.js PUB sending herald-shaped JSON envelopes to `subs` SUB sockets (spread over processes
 * of at most 10 sockets). Returns per repetition {rate (slowest subscriber's receive rate), p50/p99, ...}.
 */
export async function rawPubSub(reps, { count, subs, port, legacy }) {
  return repeat(reps, async () => {
    const pub = nodeWorker("raw-pub.mjs", [
      "--bind",
      `tcp://127.0.0.1:${port}`,
      "--count",
      String(count),
      ...(legacy ? ["--legacy", legacy] : []),
    ]);
    try {
      const { bound } = await pub.waitLine((l) => l.bound);
      const result = await collectFrom([[bound, subs]], count, () => pub.send("go"));
      const sent = await pub.waitLine((l) => l.sendRate, 300_000);
      return { ...result, sendRate: sent.sendRate };
    } finally {
      pub.kill();
    }
  });
}

/**
 * Start subscriber processes (at most 10 SUB sockets each) on every `[endpoint, subs]` target, wait until
 * all saw a probe, call `go()`, gather results: the slowest socket's receive rate, latency percentiles.
 */
export async function collectFrom(targets, expect, go) {
  const procs = [];
  for (const [endpoint, subs] of targets) {
    for (let left = subs; left > 0; left -= 10) {
      procs.push(
        nodeWorker("sub-collect.mjs", [
          "--connect",
          endpoint,
          "--sockets",
          String(Math.min(10, left)),
          "--expect",
          String(expect),
        ]),
      );
    }
  }
  try {
    await Promise.all(procs.map((p) => p.waitLine((l) => l.ready, 60_000)));
    await go();
    const results = await Promise.all(procs.map((p) => p.waitLine((l) => l.sockets, 600_000)));
    const rates = results.flatMap((r) => r.rates);
    const received = results.flatMap((r) => r.received);
    return {
      rate: Math.min(...rates),
      minReceived: Math.min(...received),
      expected: expect,
      sockets: received.length,
      // Latency: the median of the subscriber processes' p50s, the worst of their p99s.
      p50_us: medianNum(results.map((r) => r.p50_us)),
      p99_us: Math.max(...results.map((r) => r.p99_us)),
    };
  } finally {
    for (const p of procs) p.kill();
  }
}

function medianNum(v) {
  const s = v.filter(Number.isFinite).sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
