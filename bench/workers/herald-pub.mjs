// herald's own client publishing to a broker: one at a time, or batches with a window of requests in flight.
// usage: herald-pub.mjs --connect EP --count N [--batch B --window W] [--barrier] [--probe] [--topic T]
//   --barrier  after warm-up print {"ready":true} and wait for a line on stdin before measuring
//   --probe    while waiting at the barrier, publish a bench.probe message every 50 ms (subscribers' link check)
//   --probe-topic T  topic of those probes (default bench.probe; subscribers recognize any topic ending in
//              bench.probe, so a bridged service's probes can be <prefix>.<env>.<module>.bench.probe)
//   --warmup N messages sent before measuring (default 50 requests' worth)
//   --pad N    body text length (default 64); every body carries {t: send time in ms, k}
import { HeraldClient } from "../../dist/client/publisher.js";
import { createMessage } from "../../dist/wire/message.js";
import { args, emit, lat, nowMs, stdinLine } from "./args.mjs";

const a = args();
const count = Number(a.count);
const batch = Number(a.batch ?? 1);
const window = Number(a.window ?? 1);
const topic = a.topic ?? "bench.herald";
const probeTopic = a["probe-topic"] ?? "bench.probe";
const text = "x".repeat(Number(a.pad ?? 64));
const client = new HeraldClient({ endpoint: a.connect, timeoutMs: 30_000, retries: 0 });
let errors = 0;
let firstError;

async function sendBatch(k0, n) {
  const msgs = [];
  for (let k = k0; k < k0 + n; k++) msgs.push(createMessage({ topic, body: { t: nowMs(), k, text } }));
  const results = await client.submit(msgs);
  for (const r of results) {
    if (r instanceof Error) {
      errors++;
      firstError ??= `${r.code}: ${r.message}`;
    }
  }
}

async function run(n, record) {
  const requests = Math.ceil(n / batch);
  let next = 0;
  const lane = async () => {
    while (next < requests) {
      const i = next++;
      const t = nowMs();
      await sendBatch(i * batch, Math.min(batch, n - i * batch));
      record?.push(nowMs() - t);
    }
  };
  await Promise.all(Array.from({ length: Math.min(window, requests) }, lane));
}

await run(Math.min(Number(a.warmup ?? 50 * batch), count)); // warm-up: connect, JIT
if (a.barrier) {
  emit({ ready: true });
  const go = stdinLine();
  if (a.probe) {
    let waiting = true;
    void go.then(() => (waiting = false));
    while (waiting) {
      await client.publish(probeTopic, { t: nowMs() });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await go;
}
const latencies = [];
const tStart = nowMs();
await run(count, latencies);
const tEnd = nowMs();
const secs = (tEnd - tStart) / 1000;
emit({ count, batch, window, errors, firstError, tStart, tEnd, secs, rate: count / secs, ...lat(latencies) });
await client.close();
