/**
 * A real herald broker inside a test process: its own temp directory, an IPC submit socket and both PUB
 * sockets on free loopback ports, no configuration file. Code that publishes with HeraldClient gets real
 * acknowledgements (durable in the temp outbox), the same refusals as production (topic rules, sizes,
 * body schemas) and real subscribers; MemoryBus stays the faster choice for code that only moves
 * messages between transports.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AdmissionCheck, Broker } from "../broker/broker.js";
import { subscribe } from "../client/index.js";
import { HeraldClient } from "../client/publisher.js";
import type { Subscriber } from "../client/subscriber.js";
import { TransportError } from "../errors.js";
import { SchemaRegistry, type SchemaRegistryOptions } from "../schemas/registry.js";
import { ZmqPublishTransport } from "../transport/zeromq-pub.js";

export interface TestBrokerOptions {
  /** Broker name (`via`, stream ids). Default "test". */
  name?: string;
  /** limits.maxBodyBytes. Default 1 MiB, as `herald serve`. */
  maxBodyBytes?: number;
  /** Body schemas checked before storing, as `schemas.dir` / `schemas.strict` do in `herald serve`. */
  schemas?: SchemaRegistryOptions;
}

export interface TestBroker {
  broker: Broker;
  /** The submit endpoint (`ipc://...`), for clients of your own. */
  submit: string;
  /** The PUB endpoints, by format. */
  pub: { herald: string; legacy: string };
  /** A client of this broker (closed by stop()). */
  client(options?: Partial<ConstructorParameters<typeof HeraldClient>[0]>): HeraldClient;
  /**
   * A subscriber whose subscriptions the broker has already seen: what is published after this resolves
   * reaches it (a PUB socket drops what it sends before a subscription arrives). Closed by stop().
   */
  subscribe(
    patterns?: string[],
    options?: { formats?: ReadonlyArray<"herald" | "legacy"> },
  ): Promise<Subscriber>;
  /** Stop everything this broker opened and delete its directory. */
  stop(): Promise<void>;
}

/** How long subscribe() waits for the broker to see the new subscriptions. */
const SUBSCRIBE_TIMEOUT_MS = 5_000;

export async function startTestBroker(options: TestBrokerOptions = {}): Promise<TestBroker> {
  const name = options.name ?? "test";
  // Before the temp dir: a bad schemas dir throws here and leaves nothing behind.
  const admission: AdmissionCheck[] = [];
  if (options.schemas) {
    const registry = new SchemaRegistry(options.schemas);
    admission.push((m) => registry.check(m));
  }
  const dir = mkdtempSync(join(tmpdir(), "herald-testbroker-"));
  // XPUB: the broker sees each subscription, so subscribe() can wait for it instead of sleeping.
  const pub = (format: "herald" | "legacy") =>
    new ZmqPublishTransport({
      name: format,
      endpoint: "tcp://127.0.0.1:*",
      format,
      brokerName: name,
      xpub: true,
    });
  const pubs = { herald: pub("herald"), legacy: pub("legacy") };
  const seen = { herald: 0, legacy: 0 };
  for (const f of ["herald", "legacy"] as const)
    pubs[f].onSubscription((e) => {
      if (e.subscribe) seen[f]++;
    });
  const submit = `ipc://${join(dir, "run", "submit.sock")}`;
  const broker = new Broker({
    name,
    submitEndpoints: [submit],
    outbox: { path: join(dir, "outbox.db") },
    sinks: [pubs.herald, pubs.legacy],
    maxBodyBytes: options.maxBodyBytes ?? 1 << 20,
    maxBatch: 1000,
    publishDelayMs: 0,
    admission,
  });
  try {
    await broker.start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const endpoints = { herald: [pubs.herald.lastEndpoint ?? ""], legacy: [pubs.legacy.lastEndpoint ?? ""] };
  const clients: HeraldClient[] = [];
  const subs: Subscriber[] = [];
  return {
    broker,
    submit,
    pub: { herald: endpoints.herald[0] ?? "", legacy: endpoints.legacy[0] ?? "" },
    client(o = {}) {
      const c = new HeraldClient({ endpoint: submit, timeoutMs: 5000, retries: 2, ...o });
      clients.push(c);
      return c;
    },
    async subscribe(patterns = ["#"], o = {}) {
      const formats = o.formats ?? ["herald"];
      const before = formats.map((f) => seen[f]);
      const sub = subscribe(patterns, { formats, endpoints });
      subs.push(sub);
      const deadline = Date.now() + SUBSCRIBE_TIMEOUT_MS;
      while (!formats.every((f, i) => seen[f] > (before[i] ?? 0))) {
        if (Date.now() > deadline)
          throw new TransportError(
            "TIMEOUT",
            `the test broker saw no subscription from the new subscriber within ${SUBSCRIBE_TIMEOUT_MS} ms: is a firewall blocking 127.0.0.1?`,
          );
        await new Promise((r) => setTimeout(r, 2));
      }
      return sub;
    },
    async stop() {
      await Promise.all(subs.map((s) => s.close()));
      await Promise.all(clients.map((c) => c.close()));
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
