// K SUB sockets on one endpoint, counting data messages and their send-to-receive latency (body.t / msg.t).
// Prints {"ready":true} once every socket has seen a bench.probe message, then the result after the
// data stops (idle for --idle ms, or --expect messages on every socket).
// usage: sub-collect.mjs --connect EP --sockets K --expect N [--idle MS] [--noprobe]
import { Subscriber } from "zeromq";
import { args, emit, lat, nowMs } from "./args.mjs";

const a = args();
const k = Number(a.sockets ?? 1);
const expect = Number(a.expect);
const idleMs = Number(a.idle ?? 3000);
const socks = Array.from({ length: k }, () => {
  const s = new Subscriber({ linger: 0, receiveHighWaterMark: 10_000 });
  s.connect(a.connect);
  s.subscribe();
  return s;
});
const ready = new Array(k).fill(false);
const counts = new Array(k).fill(0);
const first = new Array(k).fill(0);
const last = new Array(k).fill(0);
const latencies = [];
let announced = false;
let lastAny = 0;

async function read(i) {
  const s = socks[i];
  try {
    for await (const [, payload] of s) {
      const now = nowMs();
      const env = JSON.parse(payload.toString());
      const body = env.body ?? env.msg ?? {};
      const probe = (env.topic ?? "").endsWith("bench.probe");
      if (probe) {
        if (!ready[i]) {
          ready[i] = true;
          if (!announced && ready.every(Boolean)) {
            announced = true;
            emit({ ready: true });
          }
        }
        continue;
      }
      if (!ready[i]) continue; // before our first probe: the publisher's warm-up, not measured
      if (counts[i] === 0) first[i] = now;
      counts[i]++;
      last[i] = now;
      lastAny = now;
      if (typeof body.t === "number") latencies.push(now - body.t);
      if (counts[i] >= expect) break;
    }
  } catch {
    // closed below
  }
}

if (a.noprobe) {
  // The publisher waits for our subscription itself (XPUB): nothing to probe.
  announced = true;
  ready.fill(true);
  emit({ ready: true });
}
const readers = socks.map((_, i) => read(i));
const finished = Promise.all(readers);
let done = false;
void finished.then(() => (done = true));
while (!done) {
  await new Promise((r) => setTimeout(r, 100));
  if (lastAny > 0 && nowMs() - lastAny > idleMs) break;
}
for (const s of socks) s.close();
const rates = counts.map((c, i) => (c > 1 ? c / ((last[i] - first[i]) / 1000) : 0));
emit({
  sockets: k,
  received: counts,
  minReceived: Math.min(...counts),
  rates,
  firstAt: Math.min(...first.filter((x) => x > 0)),
  lastAt: Math.max(...last),
  ...lat(latencies),
});
process.exit(0);
