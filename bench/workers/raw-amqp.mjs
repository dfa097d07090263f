// Raw amqplib reference: a confirm channel publishing persistent, mandatory messages (herald-envelope
// sized JSON) with at most --window unconfirmed, as herald's AMQP sink does, to amq.topic.
// usage: raw-amqp.mjs --url URL --routing-key RK --count N [--window 256]
import amqp from "amqplib";
import { toWireObject } from "../../dist/wire/herald.js";
import { createMessage } from "../../dist/wire/message.js";
import { args, emit, nowMs } from "./args.mjs";

const a = args();
const count = Number(a.count);
const window = Number(a.window ?? 256);
const conn = await amqp.connect(a.url);
const ch = await conn.createConfirmChannel();
const template = toWireObject(
  createMessage({ topic: a["routing-key"], body: { t: 0, k: 0, text: "x".repeat(64) } }),
);

async function run(n) {
  let inflight = 0;
  let confirmed = 0;
  let wake;
  let failed;
  const all = new Promise((resolve) => {
    const onConfirm = (err) => {
      if (err) failed ??= err;
      confirmed++;
      inflight--;
      wake?.();
      if (confirmed === n) resolve();
    };
    (async () => {
      for (let k = 0; k < n; k++) {
        while (inflight >= window) await new Promise((r) => (wake = r));
        inflight++;
        const body = Buffer.from(
          JSON.stringify({ ...template, body: { t: nowMs(), k, text: template.body.text } }),
        );
        const ok = ch.publish(
          "amq.topic",
          a["routing-key"],
          body,
          { persistent: true, mandatory: true, contentType: "application/json" },
          onConfirm,
        );
        if (!ok) await new Promise((r) => ch.once("drain", r));
      }
    })();
  });
  await all;
  if (failed) throw failed;
}

await run(Math.min(500, count));
const t0 = nowMs();
await run(count);
const secs = (nowMs() - t0) / 1000;
emit({ count, window, secs, rate: count / secs });
await ch.close();
await conn.close();
