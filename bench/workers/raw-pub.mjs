// Raw PUB/SUB reference: a zeromq.js Publisher sending JSON envelopes (the same shape and size as
// herald's) built with JSON.stringify per message, as fast as send() allows (PUB drops at the HWM).
// Publishes bench.probe every 50 ms until a line arrives on stdin, then --count data messages.
// usage: raw-pub.mjs --bind EP --count N [--pad N] [--legacy TOPIC_PREFIX]
//   --legacy P  send fedmsg envelopes (sorted-key JSON) on topic P.bench.data instead of herald-shaped ones
import { randomUUID } from "node:crypto";
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
const probeTopic = a.legacy ? `${a.legacy}.bench.probe` : "bench.probe";
// A fresh id per probe: a broker in the path (the shim) deduplicates by id, and a subscriber that joins
// late must still see one.
const probe = () =>
  Buffer.from(
    JSON.stringify(
      a.legacy
        ? { i: 0, msg: {}, msg_id: `0-${randomUUID()}`, timestamp: 0, topic: probeTopic, username: "bench" }
        : { ...template, id: randomUUID(), topic: probeTopic },
    ),
  );
let waiting = true;
const go = stdinLine().then(() => (waiting = false));
while (waiting) {
  await sock.send([Buffer.from(probeTopic), probe()]);
  await new Promise((r) => setTimeout(r, 50));
}
await go;
const legacyTopic = a.legacy ? `${a.legacy}.bench.data` : undefined;
const topic = Buffer.from(legacyTopic ?? "bench.raw");
const year = new Date().getUTCFullYear();
// fedmsg's envelope with its keys in sorted order, so JSON.stringify gives fedmsg's canonical JSON.
const encode = legacyTopic
  ? (k) => ({
      i: k + 1,
      msg: { k, t: nowMs(), text },
      msg_id: `${year}-${randomUUID()}`,
      timestamp: Math.floor(Date.now() / 1000),
      topic: legacyTopic,
      username: "bench",
    })
  : (k) => ({ ...template, seq: k + 1, body: { t: nowMs(), k, text } });
const t0 = nowMs();
for (let k = 0; k < count; k++) await sock.send([topic, Buffer.from(JSON.stringify(encode(k)))]);
const secs = (nowMs() - t0) / 1000;
emit({ count, secs, sendRate: count / secs });
await new Promise((r) => setTimeout(r, 500));
sock.close();
