/**
 * Durability review 2, finding 1: a sink's name is its cursor. Renaming or removing a sink while messages
 * are pending for it used to drop them with one warning; now the start is refused (ConfigError, exit 3)
 * naming the sink and its backlog, unless `forgetSinks` (`herald serve --forget-sink NAME`) asks for it.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Broker } from "../src/broker/broker.js";
import { ConfigError, TransportError } from "../src/errors.js";
import { Outbox } from "../src/storage/outbox.js";
import type { Transport, TransportHealth } from "../src/transport/types.js";
import { createLogger } from "../src/util/log.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { CLI, freePorts, serveEnv, startServe } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A sink that is down (RabbitMQ unreachable): every send fails, so everything stays pending for it. */
class DownSink implements Transport {
  readonly kind = "amqp";
  constructor(readonly name: string) {}
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async send(_batch: readonly Message[]): Promise<void> {
    throw new TransportError("TRANSPORT", "connect ECONNREFUSED");
  }
  receive(): never {
    throw new Error("send only");
  }
  health(): TransportHealth {
    return { state: "down", sent: 0, received: 0, counters: {} };
  }
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "herald-dr2-sinks-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function brokerOn(dir: string, sinks: string[], forgetSinks?: string[]) {
  const lines: string[] = [];
  const b = new Broker({
    name: "t",
    submitEndpoints: [`ipc://${join(dir, "run", "submit.sock")}`],
    outbox: { path: join(dir, "outbox.db"), failpoint: "" },
    sinks: sinks.map((s) => new DownSink(s)),
    maxBodyBytes: 1 << 20,
    maxBatch: 1000,
    log: createLogger({ format: "json", write: (l) => lines.push(l) }),
    ...(forgetSinks ? { forgetSinks } : {}),
  });
  cleanups.push(() => b.stop());
  return { b, lines };
}

const peer = { routingId: Buffer.alloc(0), endpoint: "test" };
const batch = (n: number): Message[] =>
  Array.from({ length: n }, () => createMessage({ topic: "org.test.dr2", body: {} }));

/** A broker with sink `rabbit` (down) that acknowledged `n` messages, stopped. */
async function backlogFor(dir: string, n: number): Promise<void> {
  const { b } = brokerOn(dir, ["rabbit"]);
  await b.start();
  const results = await b.accept(batch(n), peer);
  expect(results.every((r) => r.ok)).toBe(true);
  await b.stop();
}

async function startError(b: Broker): Promise<unknown> {
  return b.start().then(
    () => undefined,
    (err: unknown) => err,
  );
}

describe("a sink renamed or removed with messages pending for it", () => {
  it("refuses to start, naming the sink, its backlog and both fixes, and drops nothing", async () => {
    const dir = tempDir();
    await backlogFor(dir, 50);
    const renamed = brokerOn(dir, ["rabbitmq"]);
    const err = await startError(renamed.b);
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as ConfigError).message;
    expect(message).toContain("'rabbit' (50 messages pending");
    expect(message).toContain("put the sink back under the same name");
    expect(message).toContain("--forget-sink rabbit");
    // Put back under its name, the sink still has all 50 ahead of it.
    const back = brokerOn(dir, ["rabbit"]);
    await back.b.start();
    expect(back.b.status().sinks.map((s) => [s.name, s.lag])).toEqual([["rabbit", 50]]);
  });

  it("drops the backlog when asked by name (logged as a warning), and nothing else", async () => {
    const dir = tempDir();
    await backlogFor(dir, 20);
    const { b, lines } = brokerOn(dir, ["rabbitmq"], ["rabbit"]);
    await b.start();
    const s = b.status();
    expect(Object.keys(s.outbox.sinks)).toEqual(["rabbitmq"]);
    expect(s.outbox.pendingMessages).toBe(0);
    const warn = lines.map((l) => JSON.parse(l)).find((l) => l.sink === "rabbit");
    expect(warn).toMatchObject({ level: "warn", dropped: 20 });
  });

  it("forgets a removed sink with nothing pending on its own, at info", async () => {
    const dir = tempDir();
    const box = Outbox.open({ path: join(dir, "outbox.db"), failpoint: "" });
    box.registerSink("old");
    box.close();
    const { b, lines } = brokerOn(dir, ["rabbit"]);
    await b.start();
    expect(Object.keys(b.status().outbox.sinks)).toEqual(["rabbit"]);
    expect(lines.map((l) => JSON.parse(l)).find((l) => l.sink === "old")).toMatchObject({ level: "info" });
  });

  it("refuses --forget-sink for a sink that is configured", async () => {
    const dir = tempDir();
    await backlogFor(dir, 5);
    const err = await startError(brokerOn(dir, ["rabbit"], ["rabbit"]).b);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain("a sink by that name is configured");
  });
});

describe("herald serve with a removed sink's backlog", () => {
  it("exits 3 naming the sink; --forget-sink NAME starts it", { timeout: 60_000 }, async () => {
    const dir = tempDir();
    const box = Outbox.open({ path: join(dir, "data", "outbox.db"), failpoint: "" });
    box.registerSink("gone");
    box.appendSync(batch(7));
    box.close();
    const [herald, legacy] = await freePorts(2);
    const env = serveEnv(dir, { herald: herald!, legacy: legacy! });
    const refused = spawnSync(process.execPath, [CLI, "serve"], { env, encoding: "utf8", timeout: 30_000 });
    expect(refused.status).toBe(3);
    expect(refused.stderr).toContain("'gone' (7 messages pending");
    const s = await startServe(env, ["--forget-sink", "gone"]);
    cleanups.push(async () => {
      if (s.child.exitCode === null) s.child.kill("SIGTERM");
      await s.exited;
    });
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    expect(s.stderr()).toContain("dropped=7");
  });
});
