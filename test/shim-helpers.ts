/** Shared setup for the migration shim tests: a broker with the shim in-process, temp dirs, free ports. */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { type RunningBroker, startBroker } from "../src/cli/serve.js";
import { HeraldClient } from "../src/client/publisher.js";
import { Subscriber } from "../src/client/subscriber.js";
import { loadConfig } from "../src/config/load.js";
import type { HeraldConfig, LegacyStage } from "../src/config/schema.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { type Logger, silentLogger } from "../src/util/log.js";
import { freePorts } from "./helpers/serve.js";
import { PythonPeer } from "./peers/python-peer.js";

export interface ShimSetup {
  dir: string;
  file: string;
  config: HeraldConfig;
  ports: { herald: number; legacy: number };
  running: RunningBroker;
  client: HeraldClient;
  heraldSub(patterns?: string[]): Subscriber;
  /** Rewrite the config file with new service stages and reload the in-process shim. */
  setStages(stages: Record<string, LegacyStage>): Promise<void>;
  stop(): Promise<void>;
}

export interface ShimSetupOptions {
  services: Record<string, { stage: LegacyStage; endpoints: string[] }>;
  relayInbound?: string;
  grace?: string;
  /** legacy.watchRetired; default: not set (the configured default). */
  watchRetired?: string;
  settleMs?: number;
  /** The broker's (and shim's) logger; default silent. */
  log?: Logger;
  /** Extra `security:` section (keys and trust under the setup's data dir unless given). */
  security?: Record<string, unknown>;
  /** `broker.submit` instead of the default (the IPC socket only). */
  submit?: Record<string, unknown>;
}

export function endpointsOn(ports: number[]): string[] {
  return ports.map((p) => `tcp://127.0.0.1:${p}`);
}

export function configYaml(
  dir: string,
  ports: { herald: number; legacy: number },
  o: ShimSetupOptions,
): string {
  return stringify({
    paths: { runtimeDir: join(dir, "run"), dataDir: join(dir, "data") },
    broker: {
      name: "shimtest",
      ...(o.submit ? { submit: o.submit } : {}),
      publish: [
        { name: "herald", endpoint: `tcp://127.0.0.1:${ports.herald}`, format: "herald" },
        { name: "legacy", endpoint: `tcp://127.0.0.1:${ports.legacy}`, format: "legacy" },
      ],
    },
    legacy: {
      enabled: true,
      topicPrefix: "org.example",
      environment: "dev",
      relayInbound: o.relayInbound ?? null,
      grace: o.grace ?? "1s",
      ...(o.watchRetired !== undefined ? { watchRetired: o.watchRetired } : {}),
      services: o.services,
    },
    ...(o.security ? { security: o.security } : {}),
    log: { level: "warn" },
  });
}

export async function startShimBroker(o: ShimSetupOptions): Promise<ShimSetup> {
  const dir = mkdtempSync(join(tmpdir(), "herald-shim-"));
  const [herald, legacy] = await freePorts(2);
  const ports = { herald: herald!, legacy: legacy! };
  const file = join(dir, "herald.yaml");
  const services = structuredClone(o.services);
  writeFileSync(file, configYaml(dir, ports, o));
  const load = (): HeraldConfig => loadConfig({ configPath: file, env: {} }).config;
  const config = load();
  const running = await startBroker(config, o.log ?? silentLogger, undefined, {
    settleMs: o.settleMs ?? 2000,
  });
  const client = new HeraldClient({ endpoint: `ipc://${join(dir, "run", "submit.sock")}`, timeoutMs: 2000 });
  const subs: Subscriber[] = [];
  return {
    dir,
    file,
    config,
    ports,
    running,
    client,
    heraldSub(patterns = ["#"]) {
      const t = new ZmqSubscribeTransport({
        name: "test-herald",
        endpoints: [`tcp://127.0.0.1:${ports.herald}`],
        format: "herald",
      });
      const s = new Subscriber({ sources: [t], patterns });
      subs.push(s);
      return s;
    },
    async setStages(stages) {
      for (const [name, stage] of Object.entries(stages)) services[name]!.stage = stage;
      writeFileSync(file, configYaml(dir, ports, { ...o, services }));
      await running.shim!.reload(load());
    },
    async stop() {
      await Promise.all(subs.map((s) => s.close()));
      await client.close();
      await running.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Collect every message (not only ids) from a subscriber in the background. */
export function collect(sub: Subscriber): {
  msgs: import("../src/wire/message.js").Message[];
  done: Promise<void>;
} {
  const msgs: import("../src/wire/message.js").Message[] = [];
  const done = (async () => {
    try {
      for await (const m of sub) msgs.push(m.message);
    } catch {
      // closed
    }
  })();
  return { msgs, done };
}

/**
 * An old app publishing the fedmsg way (test/peers/fedmsg_pub.py, python3-zmq): binds its endpoints (or
 * connects to relay_inbound) and sends `count` messages once `waitSubscribers` (default 1) are connected.
 */
export function legacyPublisher(o: {
  bind?: string[];
  connect?: string;
  count: number;
  topic: string;
  waitSubscribers?: number;
  extra?: string[];
}): PythonPeer {
  return PythonPeer.start("fedmsg_pub.py", [
    ...(o.bind ?? []).flatMap((e) => ["--bind", e]),
    ...(o.connect === undefined ? [] : ["--connect", o.connect]),
    "--count",
    String(o.count),
    "--wait-subscribers",
    String(o.waitSubscribers ?? 1),
    "--topic",
    o.topic,
    ...(o.extra ?? []),
  ]);
}
