import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Broker, BrokerOptions } from "../src/broker/broker.js";
import { createBroker } from "../src/broker/from-config.js";
import { HeraldClient } from "../src/client/publisher.js";
import { Subscriber } from "../src/client/subscriber.js";
import { loadConfigText } from "../src/config/load.js";
import type { HeraldConfig } from "../src/config/schema.js";
import type { Transport } from "../src/transport/types.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { createLogger } from "../src/util/log.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";

export interface SecureBroker {
  broker: Broker;
  config: HeraldConfig;
  ipc: string;
  tcp: string;
  pub: { herald: string; legacy: string };
  /** WARN+ log lines of the broker (JSON), to check what is logged. */
  logs: string[];
  stop(): Promise<void>;
}

/** A config-built broker (from-config wiring, as `herald serve` does) with state under `dir`. */
export async function startSecureBroker(
  dir: string,
  doc: Record<string, unknown>,
  opts: { extraSinks?: Transport[]; name?: string; extra?: Partial<BrokerOptions> } = {},
): Promise<SecureBroker> {
  mkdirSync(dir, { recursive: true });
  const [herald, legacy, submit] = await freePorts(3);
  const base = {
    paths: { runtimeDir: join(dir, "run"), dataDir: join(dir, "data") },
    broker: {
      name: opts.name ?? "sec",
      submit: { ipc: true, tcp: [`tcp://127.0.0.1:${submit}`] },
      publish: [
        { name: "herald", endpoint: `tcp://127.0.0.1:${herald}`, format: "herald" },
        { name: "legacy", endpoint: `tcp://127.0.0.1:${legacy}`, format: "legacy" },
      ],
    },
    security: { keysDir: join(dir, "keys"), trustDir: join(dir, "trust") },
  };
  const merged = {
    ...base,
    ...doc,
    broker: { ...base.broker, ...(doc["broker"] as object) },
    security: { ...base.security, ...(doc["security"] as object) },
  };
  const { config } = loadConfigText(JSON.stringify(merged), { file: join(dir, "herald.yaml"), env: {} });
  const logs: string[] = [];
  const log = createLogger({ level: "warn", format: "json", component: "test", write: (l) => logs.push(l) });
  const broker = createBroker(config, log, { publishDelayMs: 0, ...opts.extra }, opts.extraSinks ?? []);
  await broker.start();
  return {
    broker,
    config,
    ipc: `ipc://${join(config.paths.runtimeDir, "submit.sock")}`,
    tcp: `tcp://127.0.0.1:${submit}`,
    pub: { herald: `tcp://127.0.0.1:${herald}`, legacy: `tcp://127.0.0.1:${legacy}` },
    logs,
    stop: () => broker.stop(),
  };
}

/** Tracks what it creates so afterEach can close everything. */
export class Closer {
  private readonly items: Array<{ close(): Promise<void> | void }> = [];
  add<T extends { close(): Promise<void> | void }>(x: T): T {
    this.items.push(x);
    return x;
  }
  client(opts: ConstructorParameters<typeof HeraldClient>[0]): HeraldClient {
    return this.add(new HeraldClient({ timeoutMs: 2000, retries: 1, ...opts }));
  }
  subscriber(
    endpoint: string,
    opts: Partial<ConstructorParameters<typeof Subscriber>[0]> & {
      curve?: ConstructorParameters<typeof ZmqSubscribeTransport>[0]["curve"];
      format?: "herald" | "legacy";
    } = {},
  ): Subscriber {
    const { curve, format, ...rest } = opts;
    const source = new ZmqSubscribeTransport({
      name: "t",
      endpoints: [endpoint],
      format: format ?? "herald",
      reconnectInterval: 50,
      reconnectMaxInterval: 200,
      ...(curve ? { curve } : {}),
    });
    return this.add(new Subscriber({ sources: [source], patterns: ["#"], ...rest }));
  }
  async closeAll(): Promise<void> {
    for (const x of this.items.splice(0).reverse()) await x.close();
  }
}

/** Receive in the background, keeping the full ReceivedMessage. */
export function collect(sub: Subscriber): { got: Array<{ id: string; signer?: string; vouched?: string }> } {
  const got: Array<{ id: string; signer?: string; vouched?: string }> = [];
  void (async () => {
    try {
      for await (const m of sub)
        got.push({
          id: m.message.id,
          ...(m.signer !== undefined ? { signer: m.signer } : {}),
          ...(m.vouched !== undefined ? { vouched: m.vouched } : {}),
        });
    } catch {
      // closed
    }
  })();
  return { got };
}

/** Publish probes until the subscriber sees one (ZeroMQ slow joiner). */
export async function linkUp(
  publish: () => Promise<string>,
  got: Array<{ id: string }>,
  tries = 100,
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    const id = await publish();
    if (await waitFor(() => got.some((g) => g.id === id), 150)) return;
  }
  throw new Error("subscriber never connected");
}
