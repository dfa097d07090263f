// Raw PUB/SUB reference: a zeromq.js Publisher sending JSON envelopes (the same shape and size as
// herald's) built with JSON.stringify per message, as fast as send() allows (PUB drops at the HWM).
// Publishes bench.probe every 50 ms until a line arrives on stdin, then --count data messages.
// usage: raw-pub.mjs --bind EP --count N [--pad N]
import { Publisher } from "zeromq";
import { toWireObject } from "../../dist/wire/herald.js";
import { createMessage } from "../../dist/wire/message.js";
import { args, emit, nowMs, stdinLine } from "./args.mjs";

const a = args();
const count = Number(a.count);
const text = "x".repeat(Number(a.pad ?? 64));
const sock = new Publisher({ linger: 2000, sendHighWaterMark: 10_000 });
await sock.bind(a.bind);
emit({ bound: sock.lastEndpoint });
const template = toWireObject(createMessage({ topic: "bench.raw", body: { t: 0, k: 0, text } }));
const probe = Buffer.from(JSON.stringify({ ...template, topic: "bench.probe" }));
let waiting = true;
const go = stdinLine().then(() => (waiting = false));
while (waiting) {
  await sock.send([Buffer.from("bench.probe"), probe]);
  await new Promise((r) => setTimeout(r, 50));
}
await go;
const topic = Buffer.from("bench.raw");
const t0 = nowMs();
for (let k = 0; k < count; k++) {
  const env = { ...template, seq: k + 1, body: { t: nowMs(), k, text } };
  await sock.send([topic, Buffer.from(JSON.stringify(env))]);
}
const secs = (nowMs() - t0) / 1000;
emit({ count, secs, sendRate: count / secs });
await new Promise((r) => setTimeout(r, 500));
sock.close();
