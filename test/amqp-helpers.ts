import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import type { Channel, ChannelModel } from "amqplib";
import * as amqp from "amqplib";
import type { AmqpLogger, AmqpTransport } from "../src/transport/amqp.js";
import { createMessage, type Message } from "../src/wire/message.js";

export const AMQP_URL = process.env["HERALD_TEST_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2F";
const run = promisify(execFile);

/** Properties of a message as fedora-messaging publishes it (severity INFO, fixed sent-at). */
export const FM_PROPS = {
  contentType: "application/json",
  contentEncoding: "utf-8",
  deliveryMode: 2,
  headers: {
    fedora_messaging_schema: "base.message",
    fedora_messaging_severity: 20,
    "sent-at": "2024-01-01T00:00:00+00:00",
  },
};

export function uniq(prefix: string): string {
  return `herald-test-${prefix}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

export function makeMessages(
  n: number,
  topic = "org.example.test.event",
  extra: Partial<Message> = {},
  padBytes = 64,
): Message[] {
  return Array.from({ length: n }, (_, i) => ({
    ...createMessage({ topic, body: { i, pad: "x".repeat(padBytes) }, headers: { n: i } }),
    ...extra,
  }));
}

/** A test-side admin connection for topology and draining, independent of the transport under test. */
export class Admin {
  private constructor(
    readonly conn: ChannelModel,
    readonly ch: Channel,
  ) {}
  private readonly exchanges: string[] = [];
  private readonly queues: string[] = [];

  static async open(): Promise<Admin> {
    const conn = await amqp.connect(AMQP_URL);
    conn.on("error", () => {});
    const ch = await conn.createChannel();
    ch.on("error", () => {});
    return new Admin(conn, ch);
  }

  /** Delete this exchange on close (it was declared by a transport under test). */
  track(exchange: string): void {
    this.exchanges.push(exchange);
  }

  async exchange(name: string): Promise<string> {
    await this.ch.assertExchange(name, "topic", { durable: true });
    this.exchanges.push(name);
    return name;
  }

  async queue(
    name: string,
    exchange: string,
    pattern = "#",
    args?: Record<string, unknown>,
  ): Promise<string> {
    await this.ch.assertQueue(name, { durable: true, arguments: args });
    await this.ch.bindQueue(name, exchange, pattern);
    this.queues.push(name);
    return name;
  }

  /** Queue depth through a passive declare. */
  async depth(queue: string): Promise<number> {
    return (await this.ch.checkQueue(queue)).messageCount;
  }

  /** Read (and ack) everything in a queue until `expected` distinct ids arrived or it stays empty. */
  async drain(queue: string, expectedDistinct: number, idleMs = 1500): Promise<Map<string, number>> {
    const seen = new Map<string, number>();
    let idleSince = Date.now();
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      const m = await this.ch.get(queue, { noAck: true });
      if (m === false) {
        if (seen.size >= expectedDistinct || Date.now() - idleSince > idleMs) break;
        await sleep(20);
        continue;
      }
      idleSince = Date.now();
      const id = String(m.properties.messageId);
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    return seen;
  }

  async close(): Promise<void> {
    for (const q of this.queues) await this.ch.deleteQueue(q).catch(() => {});
    for (const e of this.exchanges) await this.ch.deleteExchange(e).catch(() => {});
    await this.conn.close().catch(() => {});
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `fn` until it returns true; throws with `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  fn: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(25);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run("rabbitmqctl", args, { timeout: 120_000 });
  return stdout;
}

/** Broker-side pids of the connection(s) of one transport (found by its connection_name). */
export async function connectionPidsOf(transportName: string): Promise<string[]> {
  const out = await rabbitmqctl("list_connections", "pid", "client_properties", "-q", "--no-table-headers");
  return out
    .split("\n")
    .filter((l) => l.includes(`"herald:${transportName}:`))
    .map((l) => l.split("\t")[0]!);
}

/** Close connections from the broker side (CONNECTION_FORCED), as an operator or a failover would. */
export async function closeConnections(pids: readonly string[]): Promise<number> {
  await Promise.all(pids.map((pid) => rabbitmqctl("close_connection", pid, "herald test: forced close")));
  return pids.length;
}

/**
 * Close a transport's connection from the broker side at a precise point of a burst. The code runs
 * inside RabbitMQ (`rabbitmqctl eval`): it first closes a marker connection (so the test knows it is
 * armed: the CLI takes ~0.5-1 s to start, longer than a whole burst of 2,000), then waits until `queue`
 * holds `depth` messages and closes every connection named `herald:<transportName>:*`.
 * `done` resolves with the number of connections closed.
 */
export async function armConnectionClose(
  transportName: string,
  queue: string,
  depth: number,
): Promise<{ armed: Promise<void>; done: Promise<number> }> {
  const marker = await amqp.connect(AMQP_URL, {
    clientProperties: { connection_name: `armed:${transportName}` },
  });
  marker.on("error", () => {});
  const armed = new Promise<void>((resolve) => marker.on("close", () => resolve()));
  const bin = (s: string): string => `<<"${s.replace(/[^A-Za-z0-9._:-]/g, "")}">>`;
  const code = `
Named = fun(P, Prefix) -> Props = proplists:get_value(client_properties, rabbit_reader:info(P, [client_properties]), []),
  case lists:keyfind(<<"connection_name">>, 1, Props) of
    {_, _, N} -> binary:longest_common_prefix([N, Prefix]) =:= byte_size(Prefix); _ -> false end end,
CloseNamed = fun(Prefix) -> Ps = [P || P <- rabbit_networking:connections(), Named(P, Prefix)],
  [rabbit_networking:close_connection(P, "herald test: forced close") || P <- Ps], length(Ps) end,
CloseNamed(${bin(`armed:${transportName}`)}),
QName = rabbit_misc:r(<<"/">>, queue, ${bin(queue)}),
Depth = fun() -> case rabbit_amqqueue:lookup(QName) of
  {ok, Q} -> proplists:get_value(messages, rabbit_amqqueue:info(Q, [messages]), 0); _ -> 0 end end,
Deadline = erlang:monotonic_time(millisecond) + 60000,
Loop = fun L() -> case Depth() >= ${depth} orelse erlang:monotonic_time(millisecond) > Deadline of
  true -> ok; false -> timer:sleep(1), L() end end,
Loop(),
CloseNamed(${bin(`herald:${transportName}:`)}).`;
  const done = rabbitmqctl("eval", code).then((out) => Number.parseInt(out.trim(), 10));
  done.catch(() => {});
  return { armed, done };
}

/** Collects log lines so tests can assert on them without printing. */
export function collectingLogger(): { log: AmqpLogger; lines: string[] } {
  const lines: string[] = [];
  return { log: (level, message) => lines.push(`${level}: ${message}`), lines };
}

/**
 * Publish `messages` the way the outbox dispatcher does: batches, several in flight, each failed batch
 * retried with the same messages. Calls `onProgress(confirmed)` after every batch.
 */
export async function burst(
  t: AmqpTransport,
  messages: readonly Message[],
  options: {
    batch?: number;
    concurrency?: number;
    /** Pause between batches of one worker (keeps a burst long enough to inject a fault into). */
    pauseMs?: number;
    onProgress?: (confirmed: number) => void;
    /** Awaited before each batch with the count confirmed so far. */
    gate?: (confirmed: number) => Promise<void>;
  } = {},
): Promise<void> {
  const size = options.batch ?? 100;
  const batches: Message[][] = [];
  for (let i = 0; i < messages.length; i += size) batches.push(messages.slice(i, i + size));
  let next = 0;
  let confirmed = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length) {
      const b = batches[next++]!;
      await options.gate?.(confirmed);
      for (;;) {
        try {
          await t.send(b);
          break;
        } catch {
          await sleep(100);
        }
      }
      confirmed += b.length;
      options.onProgress?.(confirmed);
      if (options.pauseMs) await sleep(options.pauseMs);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
}
