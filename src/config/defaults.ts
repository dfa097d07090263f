/**
 * Default values. Static ones are plain data (already normalised: ms, bytes); the ones that depend on
 * the machine (directories, hostname) are computed by `computeDefaults` AFTER the file and the
 * environment are merged, so moving `paths.dataDir` also moves `outbox.path` and the key directories
 * unless those are set explicitly.
 */
import os from "node:os";
import path from "node:path";
import type {
  HeraldConfig,
  LegacyServiceConfig,
  PublishSocketConfig,
  SinkConfig,
  SourceConfig,
} from "./schema.js";

const MIB = 1024 * 1024;

/** The keys whose defaults are computed; absent from STATIC_DEFAULTS. */
export type ComputedKey =
  | "paths.runtimeDir"
  | "paths.dataDir"
  | "broker.name"
  | "outbox.path"
  | "security.keysDir"
  | "security.trustDir";

export const COMPUTED_KEYS: readonly ComputedKey[] = [
  "paths.runtimeDir",
  "paths.dataDir",
  "broker.name",
  "outbox.path",
  "security.keysDir",
  "security.trustDir",
];

/** Everything except the computed keys. Deep-cloned before use: never mutate. */
export const STATIC_DEFAULTS = {
  paths: {},
  broker: {
    submit: { ipc: true, tcp: [], maxBatch: 1000 },
    publish: [
      { name: "herald", endpoint: "tcp://127.0.0.1:9941", format: "herald" },
      { name: "legacy", endpoint: "tcp://127.0.0.1:9940", format: "legacy" },
    ],
    sendHighWaterMark: 10_000,
    // Longer than a subscriber's longest reconnect wait (1 s, plus libzmq's jitter of up to 100 ms), so
    // subscribers that were connected before a restart are back before the first message goes out.
    publishDelay: 1_500,
    shutdownGrace: 5_000,
    // Off: nothing listens for HTTP unless the operator asks (it has no authentication).
    metrics: null,
  },
  outbox: {
    synchronous: "full",
    maxMessages: 1_000_000,
    maxBytes: 1024 * MIB,
    retention: 600_000,
    dedupWindow: 600_000,
  },
  limits: { maxBodyBytes: MIB },
  client: { timeout: 2_500, retries: 3 },
  sinks: [],
  sources: [],
  legacy: {
    enabled: false,
    config: null,
    shimInBroker: true,
    topicPrefix: null,
    environment: null,
    relayInbound: null,
    grace: 3_600_000,
    settle: 1_000,
    watchRetired: 604_800_000, // 7d: a weekly job shows up at least once
    services: {},
  },
  security: {
    identity: null,
    curve: false,
    requireSignatures: false,
    strictTopics: false,
    clockSkew: 120_000,
    reloadInterval: 5_000,
    policy: {},
    forwarders: [],
  },
  schemas: { dir: null, strict: false },
  log: { level: "info", format: "text" },
} as const;

export const DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F";

/** Defaults for list/map items, filled in after validation (so `type` is known to be valid). */
export const PUBLISH_ITEM_DEFAULTS: Pick<PublishSocketConfig, "format"> = { format: "herald" };

export const SINK_ITEM_DEFAULTS: { [T in SinkConfig["type"]]: Partial<Extract<SinkConfig, { type: T }>> } = {
  amqp: {
    url: DEFAULT_AMQP_URL,
    exchange: "amq.topic",
    exchangeType: "topic",
    declareExchange: true,
    format: "herald",
    topicPrefix: "",
    inFlight: 256,
    heartbeat: 15_000,
    tls: null,
    thread: true,
  },
  forward: { timeout: 2_500 },
  zeromq: { format: "herald" },
};

export const SOURCE_ITEM_DEFAULTS: {
  [T in SourceConfig["type"]]: Partial<Extract<SourceConfig, { type: T }>>;
} = {
  amqp: {
    url: DEFAULT_AMQP_URL,
    exchange: "amq.topic",
    queue: "",
    bindings: ["#"],
    format: "auto",
    ingest: false,
  },
};

export const TLS_DEFAULTS = { ca: null, cert: null, key: null } as const;

export const SERVICE_DEFAULTS: LegacyServiceConfig = { stage: "legacy", endpoints: null };

/** Facts about the machine that computed defaults depend on; injectable for tests. */
export interface MachineFacts {
  env: NodeJS.ProcessEnv;
  uid: number | undefined;
  homedir: string;
  hostname: string;
}

export function machineFacts(env: NodeJS.ProcessEnv): MachineFacts {
  return {
    env,
    uid: typeof process.getuid === "function" ? process.getuid() : undefined,
    homedir: env["HOME"] || os.homedir(),
    hostname: os.hostname(),
  };
}

/** runtimeDir: $XDG_RUNTIME_DIR/herald, else /run/herald as root, else /tmp/herald-<uid>. */
export function defaultRuntimeDir(m: MachineFacts): string {
  const xdg = m.env["XDG_RUNTIME_DIR"];
  if (xdg) return path.join(xdg, "herald");
  if (m.uid === 0) return "/run/herald";
  return `/tmp/herald-${m.uid ?? "user"}`;
}

/** dataDir: /var/lib/herald as root, else $XDG_DATA_HOME/herald, else ~/.local/share/herald. */
export function defaultDataDir(m: MachineFacts): string {
  if (m.uid === 0) return "/var/lib/herald";
  const xdg = m.env["XDG_DATA_HOME"];
  if (xdg) return path.join(xdg, "herald");
  return path.join(m.homedir, ".local", "share", "herald");
}

type PartialConfig = {
  paths: Partial<HeraldConfig["paths"]>;
  broker: Partial<HeraldConfig["broker"]>;
  outbox: Partial<HeraldConfig["outbox"]>;
  security: Partial<HeraldConfig["security"]>;
};

/**
 * Fill the computed keys that the merged document left unset, in dependency order (dataDir before
 * the paths under it). Returns the keys it filled, which are "default" in provenance.
 */
export function computeDefaults(cfg: PartialConfig, m: MachineFacts): ComputedKey[] {
  const filled: ComputedKey[] = [];
  if (cfg.paths.runtimeDir === undefined) {
    cfg.paths.runtimeDir = defaultRuntimeDir(m);
    filled.push("paths.runtimeDir");
  }
  if (cfg.paths.dataDir === undefined) {
    cfg.paths.dataDir = defaultDataDir(m);
    filled.push("paths.dataDir");
  }
  const dataDir = cfg.paths.dataDir;
  if (cfg.broker.name === undefined) {
    cfg.broker.name = m.hostname;
    filled.push("broker.name");
  }
  if (cfg.outbox.path === undefined) {
    cfg.outbox.path = path.join(dataDir, "outbox.db");
    filled.push("outbox.path");
  }
  if (cfg.security.keysDir === undefined) {
    cfg.security.keysDir = path.join(dataDir, "keys");
    filled.push("security.keysDir");
  }
  if (cfg.security.trustDir === undefined) {
    cfg.security.trustDir = path.join(dataDir, "trust");
    filled.push("security.trustDir");
  }
  return filled;
}
