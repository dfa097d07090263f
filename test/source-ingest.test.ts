import { execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import type { BrokerStatus } from "../src/broker/broker.js";
import { HeraldClient } from "../src/client/publisher.js";
import { Subscriber } from "../src/client/subscriber.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { Admin, uniq } from "./amqp-helpers.js";
import { collectIds, waitFor } from "./helpers/broker.js";
import { CLI, freePorts, PY, serveEnv, startServe } from "./helpers/serve.js";

// What fedora-messaging's api.publish puts on the wire (properties and headers), done with pika.
const FM_PUBLISH = `
import json, sys, uuid, datetime, pika
exchange, count = sys.argv[1], int(sys.argv[2])
conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F"))
ch = conn.channel()
ch.confirm_delivery()
ids = []
for i in range(count):
    mid = str(uuid.uuid4())
    sent = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    props = pika.BasicProperties(content_type="application/json", content_encoding="utf-8", delivery_mode=2,
        message_id=mid, headers={"fedora_messaging_schema": "base.message", "fedora_messaging_severity": 20,
        "sent-at": sent, "fedora_messaging_user_alice": True})
    ch.basic_publish(exchange, "org.fedoraproject.prod.bodhi.update.comment", json.dumps({"i": i}).encode(), props)
    ids.append(mid)
conn.close()
print(json.dumps(ids))
`;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("AMQP sources", () => {
  it("herald serve ingests a fedora-messaging queue, acknowledging only what the broker stored; tail --source reads one", async () => {
    const admin = await Admin.open();
    cleanups.push(() => admin.close());
    const exchange = await admin.exchange(uniq("herald-src-x"));
    // A named queue (as a site would configure): what is published while herald is down waits there.
    const queue = await admin.queue(uniq("herald-src-q"), exchange, "org.#");
    const publish = async (n: number): Promise<string[]> =>
      JSON.parse((await promisify(execFile)(PY, ["-c", FM_PUBLISH, exchange, String(n)])).stdout) as string[];
    const before = await publish(25);
    const dir = mkdtempSync(join(tmpdir(), "herald-src-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [hp, lp] = await freePorts(2);
    const source = { name: "fm", type: "amqp", exchange, queue, bindings: ["org.#"], ingest: true };
    const env = serveEnv(dir, { herald: hp!, legacy: lp! }, { HERALD_SOURCES: JSON.stringify([source]) });
    const sub = new Subscriber({
      sources: [
        new ZmqSubscribeTransport({ name: "h", endpoints: [`tcp://127.0.0.1:${hp}`], format: "herald" }),
      ],
    });
    cleanups.push(() => sub.close());
    const got = collectIds(sub);
    const serve = await startServe(env);
    cleanups.push(async () => {
      serve.child.kill("SIGTERM");
      await serve.exited;
    });
    const after = await publish(25);
    const ids = [...before, ...after];
    // fedora-messaging ids are kept, so the broker deduplicates redeliveries.
    expect(await waitFor(() => ids.every((id) => got.ids.includes(id)), 30_000)).toBe(true);
    let depth = -1;
    for (let i = 0; i < 100 && depth !== 0; i++) {
      depth = await admin.depth(queue);
      if (depth !== 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(depth).toBe(0); // acknowledged to RabbitMQ once the broker stored them
    const statusClient = new HeraldClient({ endpoint: serve.submit });
    const status = (await statusClient.status()) as BrokerStatus;
    await statusClient.close();
    expect(status.sources).toHaveLength(1);
    expect(status.sources[0]).toMatchObject({ name: "fm", kind: "amqp", waiting: 0 });
    expect(
      (status.sources[0]!.counters["ingested"] ?? 0) + (status.sources[0]!.counters["duplicates"] ?? 0),
    ).toBeGreaterThanOrEqual(50);

    // tail --source reads the same kind of queue directly (here: a second, temporary one on the exchange).
    const tail = spawn(process.execPath, [CLI, "tail", "--source", "fm2", "--count", "1", "org.#"], {
      env: {
        ...env,
        HERALD_SOURCES: JSON.stringify([{ name: "fm2", type: "amqp", exchange, bindings: ["org.#"] }]),
      },
    });
    let out = "";
    tail.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const ended = new Promise((r) => tail.on("close", r));
    for (let i = 0; i < 60 && out === ""; i++) {
      await promisify(execFile)(PY, ["-c", FM_PUBLISH, exchange, "1"]);
      await waitFor(() => out !== "", 500);
    }
    await ended;
    expect(out).toMatch(
      /org\.fedoraproject\.prod\.bodhi\.update\.comment [0-9a-f-]{36} \[fedora-messaging\] \{"i":0\}/,
    );
  });
});
