import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Broker, type BrokerOptions } from "../../src/broker/broker.js";
import { HeraldClient } from "../../src/client/publisher.js";
import { Subscriber } from "../../src/client/subscriber.js";
import type { Transport } from "../../src/transport/types.js";
import { ZmqPublishTransport } from "../../src/transport/zeromq-pub.js";
import { ZmqSubscribeTransport } from "../../src/transport/zeromq-sub.js";
import type { Message } from "../../src/wire/message.js";

export interface TestBroker {
  broker: Broker;
  dir: string;
  submit: string;
  pub: { herald: string; legacy: string };
  client(opts?: Partial<ConstructorParameters<typeof HeraldClient>[0]>): HeraldClient;
  subscriber(formats: Array<"herald" | "legacy">, patterns?: string[]): Subscriber;
  stop(): Promise<void>;
}

/** An in-process broker on a temp dir, IPC submit and PUB sockets on free ports. */
export async function startTestBroker(
  extra: Partial<BrokerOptions> & { extraSinks?: Transport[] } = {},
): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), "herald-test-"));
  const pubs = {
    herald: new ZmqPublishTransport({
      name: "herald",
      endpoint: "tcp://127.0.0.1:*",
      format: "herald",
      brokerName: "test",
    }),
    legacy: new ZmqPublishTransport({
      name: "legacy",
      endpoint: "tcp://127.0.0.1:*",
      format: "legacy",
      brokerName: "test",
    }),
  };
  const submit = `ipc://${join(dir, "run", "submit.sock")}`;
  const broker = new Broker({
    name: "test",
    submitEndpoints: [submit],
    outbox: { path: join(dir, "outbox.db") },
    sinks: [pubs.herald, pubs.legacy, ...(extra.extraSinks ?? [])],
    maxBodyBytes: 1 << 20,
    maxBatch: 1000,
    publishDelayMs: 0,
    ...extra,
  });
  await broker.start();
  const clients: HeraldClient[] = [];
  const subs: Subscriber[] = [];
  return {
    broker,
    dir,
    submit,
    pub: { herald: pubs.herald.lastEndpoint!, legacy: pubs.legacy.lastEndpoint! },
    client(opts = {}) {
      const c = new HeraldClient({ endpoint: submit, timeoutMs: 2000, retries: 2, ...opts });
      clients.push(c);
      return c;
    },
    subscriber(formats, patterns = ["#"]) {
      const sources = formats.map(
        (f) =>
          new ZmqSubscribeTransport({
            name: `t-${f}`,
            endpoints: [f === "herald" ? pubs.herald.lastEndpoint! : pubs.legacy.lastEndpoint!],
            format: f,
          }),
      );
      const s = new Subscriber({ sources, patterns });
      subs.push(s);
      return s;
    },
    async stop() {
      await Promise.all(subs.map((s) => s.close()));
      await Promise.all(clients.map((c) => c.close()));
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Collect ids from a subscriber in the background. */
export function collectIds(sub: Subscriber): { ids: string[]; done: Promise<void> } {
  const ids: string[] = [];
  const done = (async () => {
    try {
      for await (const m of sub) ids.push(m.message.id);
    } catch {
      // closed
    }
  })();
  return { ids, done };
}

/** Every message a subscriber gets, in the background (until it is closed). */
export function collectMessages(sub: Subscriber): Message[] {
  const got: Message[] = [];
  void (async () => {
    try {
      for await (const d of sub) got.push(d.message);
    } catch {
      // closed
    }
  })();
  return got;
}

/** Poll until `cond` holds or the deadline passes; returns whether it held. Not a timing assertion. */
export async function waitFor(cond: () => boolean, timeoutMs = 10_000, stepMs = 20): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return true;
}

/** ZeroMQ's slow joiner: publish probes until the subscriber has one, so the link is known to be up. */
export async function linkUp(client: HeraldClient, seen: string[][], topic = "probe.link"): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ack = await client.publish(topic, { i });
    if (await waitFor(() => seen.every((s) => s.includes(ack.id)), 100)) return;
  }
  throw new Error("subscribers never connected");
}
