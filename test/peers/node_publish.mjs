// A short-lived Node publisher using herald's client (from dist/, built by `npm test`).
// usage: node node_publish.mjs ENDPOINT TOPIC COUNT [BATCH] [TIMEOUT_MS] [RETRIES]
// Prints one JSON line per message: {"ack": id} or {"err": id, "code": CODE}.
import { HeraldClient } from "../../dist/client/publisher.js";
import { createMessage } from "../../dist/wire/message.js";

const [endpoint, topic, countArg, batchArg = "1", timeoutArg = "2500", retriesArg = "3"] =
  process.argv.slice(2);
const count = Number(countArg);
const batch = Number(batchArg);
const client = new HeraldClient({ endpoint, timeoutMs: Number(timeoutArg), retries: Number(retriesArg) });
const lines = [];
for (let i = 0; i < count; i += batch) {
  const msgs = [];
  for (let k = i; k < Math.min(count, i + batch); k++)
    msgs.push(createMessage({ topic, body: { k, pid: process.pid } }));
  try {
    const results = await client.submit(msgs);
    for (const [j, r] of results.entries()) {
      lines.push(r instanceof Error ? { err: msgs[j].id, code: r.code } : { ack: r.id });
    }
  } catch (e) {
    for (const m of msgs) lines.push({ err: m.id, code: e.code ?? "THROWN" });
    // STOP_ON_DOWN=1: a broker that went away stays away (SIGTERM tests); stop instead of timing out forever.
    if (process.env.STOP_ON_DOWN === "1") break;
  }
  if (lines.length >= 500)
    process.stdout.write(
      lines
        .splice(0)
        .map((l) => JSON.stringify(l))
        .join("\n") + "\n",
    );
}
if (lines.length) process.stdout.write(lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
await client.close();
