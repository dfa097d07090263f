// Raw amqplib reference: a confirm channel publishing persistent, mandatory messages (herald-envelope
// sized JSON) with at most --window unconfirmed, as herald's AMQP sink does, to amq.topic; with the
// properties the sink sets (a unique message_id, herald's content type, an empty header table), which
// RabbitMQ and amqplib both pay for per message.
// usage: raw-amqp.mjs --url URL --routing-key RK --count N [--window 256] [--warmup 500]
import amqp from "amqplib";
import { HERALD_CONTENT_TYPE } from "../../dist/wire/fedora-messaging.js";
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

const idPrefix = template.id.slice(0, 24);

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
          {
            persistent: true,
            mandatory: true,
            contentType: HERALD_CONTENT_TYPE,
            // Same length as the UUIDv7 ids herald publishes, unique per message.
            messageId: `${idPrefix}${String(k).padStart(12, "0")}`,
            headers: {},
          },
          onConfirm,
        );
        if (!ok) await new Promise((r) => ch.once("drain", r));
      }
    })();
  });
  await all;
  if (failed) throw failed;
}

await run(Math.min(Number(a.warmup ?? 500), count)); // warm-up: connect, JIT
const t0 = nowMs();
await run(count);
const secs = (nowMs() - t0) / 1000;
emit({ count, window, secs, rate: count / secs });
await ch.close();
await conn.close();
