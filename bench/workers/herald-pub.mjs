// herald's own client publishing to a broker: one at a time, or batches with a window of requests in flight.
// usage: herald-pub.mjs --connect EP --count N [--batch B --window W] [--barrier] [--probe] [--topic T]
//   --barrier  after warm-up print {"ready":true} and wait for a line on stdin before measuring
//   --probe    while waiting at the barrier, publish a bench.probe message every 50 ms (subscribers' link check)
//   --probe-topic T  topic of those probes (default bench.probe; subscribers recognize any topic ending in
//              bench.probe, so a bridged service's probes can be <prefix>.<env>.<module>.bench.probe)
//   --warmup N messages sent before measuring (default 50 requests' worth)
//   --pad N    body text length (default 64); every body carries {t: send time in ms, k}
//   --coalesce with --batch B > 1, let the client merge batches submitted in the same tick (see below)
//
// What goes on the wire: HeraldClient merges submit() calls made in the same tick into shared requests of
// up to its maxBatch messages (src/client/coalesce.ts). The lanes below all resume in the tick their shared
// reply arrives, so with the default maxBatch (1000) "batches of 100, 8 in flight" went out as requests of
// 700 and 100 with at most 2 in flight. With --batch B > 1 the client is created with maxBatch B, which
// keeps every batch in a request of its own: W requests of B messages in flight, as the figures say and as
// their raw references send (issue 6's "the same window" is a window of requests on the wire; with
// coalescing the two sides would differ in framing as well as in herald's work). One message per call
// (--batch 1) keeps the client's default: concurrent single publishes sharing requests is the client's
// documented behaviour for concurrent callers, which the windowed multi figure measures on purpose.
// The result reports what was sent: `requests` (during the measured part) and `maxInFlight`.
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
const client = new HeraldClient({
  endpoint: a.connect,
  timeoutMs: 30_000,
  retries: 0,
  ...(batch > 1 && !a.coalesce ? { maxBatch: batch } : {}),
});
let errors = 0;
let firstError;
// Requests as they go on the wire (the client's one send per request), counted by wrapping it.
const wire = { requests: 0, inFlight: 0, maxInFlight: 0 };
if (typeof client.sendParts === "function") {
  const send = client.sendParts.bind(client);
  client.sendParts = async (parts) => {
    wire.requests++;
    wire.maxInFlight = Math.max(wire.maxInFlight, ++wire.inFlight);
    try {
      return await send(parts);
    } finally {
      wire.inFlight--;
    }
  };
}

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
// Only the measured messages count: errors of the warm-up (or of the probes) are not the load's.
errors = 0;
firstError = undefined;
wire.requests = 0;
wire.maxInFlight = 0;
const latencies = [];
const tStart = nowMs();
await run(count, latencies);
const tEnd = nowMs();
const secs = (tEnd - tStart) / 1000;
const acked = count - errors;
emit({
  count,
  acked,
  batch,
  window,
  errors,
  firstError,
  tStart,
  tEnd,
  secs,
  // Acknowledged messages only: a refused message is not a publish.
  rate: acked / secs,
  requests: wire.requests,
  maxInFlight: wire.maxInFlight,
  ...lat(latencies),
});
await client.close();
