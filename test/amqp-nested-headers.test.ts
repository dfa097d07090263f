/**
 * A message whose AMQP header table nests thousands of levels (fuzz review, repro A): amqplib's own
 * decoder recursed once per level and threw RangeError while parsing the frame, the connection failed,
 * RabbitMQ redelivered the message to the next one, forever, and nothing behind it was ingested. With
 * herald's decoder (src/transport/amqp-fields.ts, installed by amqp-lib.ts) the message is rejected and
 * counted like any undecodable one and the source moves on, on the same connection. Real RabbitMQ; the
 * poison messages are published from a worker thread with a big stack, since amqplib's encoder recurses
 * too. The CLI case runs the shipped bundle (npm run build first).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { AmqpTransport } from "../src/transport/amqp.js";
import { Admin, AMQP_URL, FM_PROPS, uniq, waitFor } from "./amqp-helpers.js";
import { LAUNCHER } from "./helpers/serve.js";

const AMQPLIB = createRequire(import.meta.url).resolve("amqplib");
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Poison {
  routingKey: string;
  /** Nesting of the `deep` header: tables {"a": {"a": ...}}, or arrays [[[...]]]. */
  depth: number;
  kind: "table" | "array";
}

/** Publish header tables nested `depth` levels, on a connection of its own, from a 64 MB stack. */
async function publishPoison(exchange: string, poisons: Poison[]): Promise<void> {
  const worker = new Worker(
    `const { workerData: w, parentPort } = require("node:worker_threads");
     const amqp = require(w.amqplib);
     const nest = (p) => { let v = 1; for (let i = 0; i < p.depth; i++) v = p.kind === "table" ? { a: v } : [v]; return v; };
     (async () => {
       const c = await amqp.connect(w.url);
       const ch = await c.createConfirmChannel();
       for (const p of w.poisons)
         ch.publish(w.exchange, p.routingKey, Buffer.from('{"poison":true}'), {
           contentType: "application/json", messageId: "poison-" + p.kind + "-" + p.depth,
           headers: { "sent-at": "2024-01-01T00:00:00+00:00", deep: nest(p) } });
       await ch.waitForConfirms();
       await c.close();
       parentPort.postMessage("published");
     })().catch((e) => parentPort.postMessage("failed: " + e.message));`,
    {
      eval: true,
      workerData: { amqplib: AMQPLIB, url: AMQP_URL, exchange, poisons },
      resourceLimits: { stackSizeMb: 64 },
    },
  );
  const outcome = await new Promise<unknown>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  await worker.terminate();
  expect(outcome).toBe("published");
}

const POISONS: Poison[] = [
  { routingKey: "deep.table", depth: 5_000, kind: "table" },
  // Near what amqplib can publish (a 64 KiB header buffer): 7 bytes a level, 5 for arrays. Deeper ones,
  // up to what frame_max allows, are in test/amqp-fields.test.ts.
  { routingKey: "deep.table", depth: 9_000, kind: "table" },
  { routingKey: "deep.array", depth: 12_000, kind: "array" },
];

describe("AMQP source: a message with deeply nested headers", () => {
  it("is rejected and counted, and the messages behind it are ingested on the same connection", async () => {
    const admin = await Admin.open();
    cleanups.push(() => admin.close());
    const exchange = await admin.exchange(uniq("fx4-deep-ex"));
    const queue = await admin.queue(uniq("fx4-deep-q"), exchange, "#");
    await publishPoison(exchange, POISONS);
    admin.ch.publish(exchange, "deep.after", Buffer.from('{"after":1}'), {
      ...FM_PROPS,
      messageId: "valid-after-poison",
    });
    await waitFor("4 messages queued", async () => (await admin.depth(queue)) === 4);

    const lines: string[] = [];
    const t = new AmqpTransport({
      name: uniq("fx4-deep"),
      url: AMQP_URL,
      exchange,
      queue,
      log: (level, message) => lines.push(`${level}: ${message}`),
    });
    cleanups.push(() => t.close());
    await t.open();
    const sub = t.receive({ patterns: ["#"] });
    const next = sub[Symbol.asyncIterator]().next();
    const got = await Promise.race([next, new Promise<"none">((r) => setTimeout(() => r("none"), 15_000))]);
    const h = t.health();
    expect(got, `lastError: ${h.lastError}; log:\n${lines.slice(0, 8).join("\n")}`).not.toBe("none");
    if (got === "none" || got.done) throw new Error("no delivery");
    expect(got.value.message.id).toBe("valid-after-poison");
    expect(h.counters["malformed"]).toBe(POISONS.length);
    expect(h.counters["reconnects"] ?? 0).toBe(0);
    expect(h.lastError).toContain("nests tables or arrays deeper than 32 levels");
    expect(lines.filter((l) => l.includes("rejecting undecodable message"))).toHaveLength(POISONS.length);
    expect(lines.join("\n")).not.toMatch(/call stack|connection lost|connection error/);
    await got.value.ack();
    // Rejected without requeue: nothing is left to come back.
    await waitFor("the queue to be empty", async () => (await admin.depth(queue)) === 0);
  });

  it("does not wedge `herald tail --source` (the shipped CLI bundle)", async () => {
    const admin = await Admin.open();
    cleanups.push(() => admin.close());
    const exchange = await admin.exchange(uniq("fx4-tail-ex"));
    const queue = await admin.queue(uniq("fx4-tail-q"), exchange, "#");
    await publishPoison(exchange, [POISONS[0]!]);
    admin.ch.publish(exchange, "deep.after", Buffer.from('{"after":1}'), {
      ...FM_PROPS,
      messageId: "tail-ok",
    });
    await waitFor("2 messages queued", async () => (await admin.depth(queue)) === 2);
    const dir = mkdtempSync(join(tmpdir(), "herald-fx4-tail-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const source = { name: "src", type: "amqp", url: AMQP_URL, exchange, queue };
    const tail = spawn(LAUNCHER, ["tail", "--source", "src", "--count", "1", "deep.#"], {
      env: {
        ...process.env,
        HERALD_CONFIG: "",
        HERALD_PATHS__RUNTIME_DIR: join(dir, "run"),
        HERALD_PATHS__DATA_DIR: join(dir, "data"),
        HERALD_SOURCES: JSON.stringify([source]),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => void tail.kill("SIGKILL"));
    let out = "";
    let err = "";
    tail.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    tail.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => resolve(-1), 20_000);
      tail.on("exit", (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code, `stderr: ${err.slice(0, 2000)}`).toBe(0);
    expect(out).toContain("deep.after");
    expect(err).not.toMatch(/call stack|connection lost/);
    expect(await admin.depth(queue)).toBe(0);
  });
});
