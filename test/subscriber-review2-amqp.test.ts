/**
 * A Subscriber over a durable RabbitMQ queue acks only what its reader was handed and moved past: its
 * read-ahead buffer must not ack messages the app never saw (they were lost on close or on a crash).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Subscriber } from "../src/client/subscriber.js";
import { AmqpTransport } from "../src/transport/amqp.js";
import { Admin, AMQP_URL, FM_PROPS, uniq, waitFor } from "./amqp-helpers.js";
import { CLI } from "./helpers/serve.js";

let admin: Admin;
const cleanups: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  admin = await Admin.open();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await admin.close();
});

/** A durable queue holding `n` fedora-messaging messages m0..m<n-1>. */
async function filledQueue(n: number): Promise<{ exchange: string; queue: string }> {
  const exchange = await admin.exchange(uniq("ex"));
  const queue = await admin.queue(uniq("q"), exchange, "r2.#");
  for (let i = 0; i < n; i++)
    admin.ch.publish(exchange, "r2.x", Buffer.from(JSON.stringify({ i })), {
      ...FM_PROPS,
      messageId: `m${i}`,
    });
  await waitFor(`${n} messages queued`, async () => (await admin.depth(queue)) === n);
  return { exchange, queue };
}

function source(exchange: string, queue: string): AmqpTransport {
  const t = new AmqpTransport({ name: uniq("src"), url: AMQP_URL, exchange, queue, log: () => {} });
  cleanups.push(() => t.close());
  return t;
}

/** The queue depth once it reaches `expected`, or the last one seen (requeues after a close land asynchronously). */
async function settlesAt(queue: string, expected: number): Promise<number> {
  let depth = -1;
  const reached = async (): Promise<boolean> => {
    depth = await admin.depth(queue);
    return depth === expected;
  };
  await waitFor(`depth ${expected}`, reached, 10_000).catch(() => {});
  return depth;
}

describe("Subscriber over a durable AMQP queue, without manualAck", () => {
  it("breaking out takes nothing off the queue unless the reader acked (at least once); read-ahead ones stay", async () => {
    const { exchange, queue } = await filledQueue(50);
    const sub = new Subscriber({ sources: [source(exchange, queue)], patterns: ["r2.#"], ownsSources: true });
    const seen: unknown[] = [];
    for await (const m of sub) {
      seen.push(m.message.body["i"]);
      // Everything is in the subscriber's buffer before the app moves on.
      await waitFor("the subscriber read all 50", () => sub.stats().received === 50);
      break;
    }
    expect(seen).toEqual([0]);
    expect(await settlesAt(queue, 50)).toBe(50);
    const again = new Subscriber({
      sources: [source(exchange, queue)],
      patterns: ["r2.#"],
      ownsSources: true,
    });
    for await (const m of again) {
      await m.ack(); // done with it: off the queue before leaving the loop
      break;
    }
    expect(await settlesAt(queue, 49)).toBe(49);
  });

  it("a loop whose work throws leaves its message in the queue", async () => {
    const { exchange, queue } = await filledQueue(10);
    const sub = new Subscriber({ sources: [source(exchange, queue)], patterns: ["r2.#"], ownsSources: true });
    const failed = await (async () => {
      for await (const m of sub) {
        if (m.message.body["i"] === 2) throw new Error("work failed");
      }
    })().catch((e: Error) => e.message);
    expect(failed).toBe("work failed");
    // 0 and 1 were moved past (acked); 2 failed and comes again with the rest.
    expect(await settlesAt(queue, 8)).toBe(8);
  });

  it("a reader that stops without closing (crash) leaves the message it was on and all read ahead", async () => {
    const { exchange, queue } = await filledQueue(20);
    const t = source(exchange, queue);
    const sub = new Subscriber({ sources: [t], patterns: ["r2.#"] });
    await sub.next();
    await sub.next();
    const third = await sub.next(); // the app is working on this one when it dies
    expect(third.value?.message.body["i"]).toBe(2);
    await waitFor("the subscriber read all 20", () => sub.stats().received === 20);
    // No Subscriber.close(): the connection goes away as with a dead process.
    await t.close();
    expect(await settlesAt(queue, 18)).toBe(18);
  });

  it("close() (a shutdown during the work) acks nothing more, and then next() says done", async () => {
    const { exchange, queue } = await filledQueue(10);
    const sub = new Subscriber({ sources: [source(exchange, queue)], patterns: ["r2.#"], ownsSources: true });
    for (let k = 0; k < 3; k++) await sub.next();
    await sub.close();
    // The first two were moved past; the third, in hand at the close, comes again.
    expect(await settlesAt(queue, 8)).toBe(8);
    await expect(sub.next()).resolves.toMatchObject({ done: true });
  });

  it("herald tail --source --count 2 acks the two it printed, not what it read ahead", async () => {
    const { exchange, queue } = await filledQueue(30);
    const dir = mkdtempSync(join(tmpdir(), "herald-tail-ack-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const src = { name: "src", type: "amqp", exchange, queue, bindings: ["r2.#"] };
    const tail = spawn(process.execPath, [CLI, "tail", "--source", "src", "--count", "2", "r2.#"], {
      env: {
        ...process.env,
        HERALD_CONFIG: "",
        HERALD_PATHS__RUNTIME_DIR: join(dir, "run"),
        HERALD_PATHS__DATA_DIR: join(dir, "data"),
        HERALD_SOURCES: JSON.stringify([src]),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => void tail.kill("SIGKILL"));
    let out = "";
    tail.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((r) => tail.on("exit", r));
    expect(code).toBe(0);
    expect(out.trim().split("\n")).toHaveLength(2);
    expect(await settlesAt(queue, 28)).toBe(28);
  });
});
