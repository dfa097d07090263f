// Raw limit: DEALER round trips to raw-router.mjs, one at a time (--window 1) or pipelined (--window W).
// Requests carry the same frames herald's client sends for --batch messages.
// usage: raw-dealer.mjs --connect EP --count N [--window W] [--batch B] [--warmup N] [--barrier]
//   --barrier  after warm-up print {"ready":true} and wait for a line on stdin (several processes start together)
import { Dealer } from "zeromq";
import { createMessage } from "../../dist/wire/message.js";
import { encodeSubmitRequest } from "../../dist/wire/submit.js";
import { args, emit, lat, nowMs, stdinLine } from "./args.mjs";

const a = args();
const count = Number(a.count);
const window = Number(a.window ?? 1);
const batch = Number(a.batch ?? 1);
const msgs = Array.from({ length: batch }, (_, k) =>
  createMessage({ topic: "bench.raw", body: { k, text: "x".repeat(64) } }),
);
const sock = new Dealer({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 });
sock.connect(a.connect);

async function oneAtATime(n, record) {
  for (let i = 0; i < n; i++) {
    const t = nowMs();
    await sock.send(encodeSubmitRequest(String(i), msgs));
    await sock.receive();
    record?.push(nowMs() - t);
  }
}

async function pipelined(n, record) {
  const started = new Float64Array(n);
  let inflight = 0;
  let received = 0;
  let wake;
  const reader = (async () => {
    while (received < n) {
      const [, rid] = await sock.receive();
      record?.push(nowMs() - started[Number(rid.toString())]);
      received++;
      inflight--;
      wake?.();
    }
  })();
  for (let i = 0; i < n; i++) {
    while (inflight >= window) await new Promise((r) => (wake = r));
    inflight++;
    started[i] = nowMs();
    await sock.send(encodeSubmitRequest(String(i), msgs));
  }
  await reader;
}

const run = window > 1 ? pipelined : oneAtATime;
await run(Number(a.warmup ?? Math.min(200, count))); // warm-up: connect, JIT
if (a.barrier) {
  emit({ ready: true });
  await stdinLine();
}
const latencies = [];
const tStart = nowMs();
await run(count, latencies);
const tEnd = nowMs();
const secs = (tEnd - tStart) / 1000;
emit({
  count,
  window,
  batch,
  errors: 0,
  tStart,
  tEnd,
  secs,
  rate: count / secs,
  msgRate: (count * batch) / secs,
  ...lat(latencies),
});
sock.close();
