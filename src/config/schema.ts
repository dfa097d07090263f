/**
 * The JSON Schema of herald.yaml (what a user may write) and the TypeScript type of the loaded,
 * fully-resolved configuration (what code reads). The schema is the single list of allowed keys: the
 * env-override mapper, the "did you mean" suggester, the unit normaliser and the docs test all walk it.
 *
 * Every object has `additionalProperties: false` so typos fail loudly. Durations and sizes are
 * `number | string` marked with the custom `x-unit` keyword (checked by ajv, normalised after validation).
 */

/** Custom keyword payload: how a leaf is normalised after validation. */
export interface UnitSpec {
  kind: "duration" | "size" | "path";
  /** Smallest allowed normalised value (ms or bytes). */
  min?: number;
  /** Largest allowed normalised value, and why (said in the error). */
  max?: number;
  maxWhy?: string;
  /** A path that may instead be a 40-character Z85 key, which is kept as it is (security.serverKey). */
  orZ85Key?: boolean;
}

/** The subset of JSON Schema herald uses; enough to walk it without `any`. */
export interface SchemaNode {
  type?: string | string[];
  description?: string;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  oneOf?: SchemaNode[];
  discriminator?: { propertyName: string };
  enum?: ReadonlyArray<string | null>;
  const?: string;
  pattern?: string;
  minLength?: number;
  minimum?: number;
  maximum?: number;
  uniqueItems?: boolean;
  "x-unit"?: UnitSpec;
}

// ---- Resolved configuration type (durations in ms, sizes in bytes, paths absolute) ----

export type PublishFormat = "herald" | "legacy";

export interface PublishSocketConfig {
  name: string;
  endpoint: string;
  format: PublishFormat;
}

export interface TlsConfig {
  ca: string | null;
  cert: string | null;
  key: string | null;
}

export interface AmqpSinkConfig {
  name: string;
  type: "amqp";
  url: string;
  exchange: string;
  exchangeType: "topic" | "direct" | "fanout" | "headers";
  declareExchange: boolean;
  format: "herald" | "fedora-messaging";
  topicPrefix: string;
  inFlight: number;
  heartbeat: number;
  tls: TlsConfig | null;
  /** Publish from a worker thread of its own (default) instead of the broker's main thread. */
  thread: boolean;
}

export interface ForwardSinkConfig {
  name: string;
  type: "forward";
  endpoint: string;
  timeout: number;
  /** The remote broker's CURVE public key (Z85): forward over CURVE as security.identity. Unset = plain. */
  serverKey?: string | null;
}

/** An extra ZeroMQ PUB socket declared among the sinks; same fields as a broker.publish item. */
export interface ZeromqSinkConfig extends PublishSocketConfig {
  type: "zeromq";
}

export type SinkConfig = AmqpSinkConfig | ForwardSinkConfig | ZeromqSinkConfig;

export interface AmqpSourceConfig {
  name: string;
  type: "amqp";
  url: string;
  exchange: string;
  queue: string;
  bindings: string[];
  format: "auto" | "herald" | "fedora-messaging";
  /** `herald serve` consumes this queue and submits what it reads to the local broker. */
  ingest: boolean;
}

export type SourceConfig = AmqpSourceConfig;

export type LegacyStage = "legacy" | "bridged" | "retired";

export interface LegacyServiceConfig {
  stage: LegacyStage;
  /** null = take the endpoints from the legacy fedmsg config. */
  endpoints: string[] | null;
}

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface HeraldConfig {
  paths: { runtimeDir: string; dataDir: string };
  broker: {
    name: string;
    submit: { ipc: boolean; tcp: string[]; maxBatch: number };
    publish: PublishSocketConfig[];
    sendHighWaterMark: number;
    publishDelay: number;
    shutdownGrace: number;
    /** `HOST:PORT` of the HTTP monitoring endpoint (/metrics, /livez, /readyz); null = none. */
    metrics: string | null;
  };
  outbox: {
    path: string;
    synchronous: "full" | "normal";
    maxMessages: number;
    maxBytes: number;
    retention: number;
    dedupWindow: number;
  };
  limits: { maxBodyBytes: number };
  client: { timeout: number; retries: number };
  sinks: SinkConfig[];
  sources: SourceConfig[];
  legacy: {
    enabled: boolean;
    config: string | null;
    shimInBroker: boolean;
    /** null: the fedmsg config's topic_prefix (else org.fedoraproject). */
    topicPrefix: string | null;
    /** null: the fedmsg config's environment (else prod). */
    environment: string | null;
    relayInbound: string | null;
    grace: number;
    settle: number;
    /**
     * After `herald cutover retire`, how long the shim keeps the service's old ports bound without serving,
     * to see (and log) old subscribers that were away during the evidence window; 0 = close them at once.
     */
    watchRetired: number;
    services: Record<string, LegacyServiceConfig>;
  };
  security: {
    keysDir: string;
    trustDir: string;
    identity: string | null;
    curve: boolean;
    requireSignatures: boolean;
    strictTopics: boolean;
    clockSkew: number;
    reloadInterval: number;
    policy: Record<string, string[]>;
    /** CURVE identities of brokers that may forward here (submit messages carrying `via`). */
    forwarders: string[];
    /** The local broker's CURVE public key for clients: Z85, or a path to its .pub file; null = <keysDir>/<identity>.pub. */
    serverKey?: string | null;
  };
  /** Body schemas the broker checks messages against (src/schemas/registry.ts); dir null = none. */
  schemas: { dir: string | null; strict: boolean };
  log: { level: LogLevel; format: "text" | "json" };
}

// ---- Schema building blocks ----

function obj(properties: Record<string, SchemaNode>, required: string[] = []): SchemaNode {
  const node: SchemaNode = { type: "object", properties, additionalProperties: false };
  if (required.length > 0) node.required = required;
  return node;
}

const oneOfValues = (...values: Array<string | null>): SchemaNode => ({ enum: values });
const bool: SchemaNode = { type: "boolean" };
const text: SchemaNode = { type: "string" };
const name: SchemaNode = {
  type: "string",
  pattern: "^[A-Za-z0-9][A-Za-z0-9._-]*$",
  description: "a name of letters, digits, '.', '_' or '-' (e.g. rabbit-1)",
};
const int = (minimum: number, maximum = 2 ** 31 - 1): SchemaNode => ({ type: "integer", minimum, maximum });
const duration = (min = 0): SchemaNode => ({
  type: ["number", "string"],
  "x-unit": { kind: "duration", min },
});
/** The longest a Node.js timer waits: setTimeout/setInterval fire after 1 ms instead of anything longer. */
export const TIMER_MAX_MS = 2 ** 31 - 1;
const TIMER_WHY = "about 24.8 days, the longest a Node.js timer can wait";
/** A duration herald waits with a timer (not an age compared with the clock), so capped at TIMER_MAX_MS. */
const timer = (min = 0, max = TIMER_MAX_MS, maxWhy = TIMER_WHY): SchemaNode => ({
  type: ["number", "string"],
  "x-unit": { kind: "duration", min, max, maxWhy },
});
const size = (min = 0): SchemaNode => ({ type: ["number", "string"], "x-unit": { kind: "size", min } });
const path: SchemaNode = { type: "string", minLength: 1, "x-unit": { kind: "path" } };
const nullablePath: SchemaNode = { type: ["string", "null"], minLength: 1, "x-unit": { kind: "path" } };
const endpoint: SchemaNode = {
  type: "string",
  pattern: "^(tcp|ipc|inproc|pgm|epgm)://\\S+$",
  description: "a ZeroMQ endpoint such as tcp://127.0.0.1:9941 or ipc:///run/herald/x.sock",
};
const amqpUrl: SchemaNode = {
  type: "string",
  pattern: "^amqps?://\\S*$",
  description: "an AMQP URL such as amqp://user:password@host:5672/%2F",
};
const list = (items: SchemaNode): SchemaNode => ({ type: "array", items });

const publishFields: Record<string, SchemaNode> = {
  name,
  endpoint,
  format: oneOfValues("herald", "legacy"),
};

/** null (the default) = plain AMQP unless the URL is amqps://, which then uses the system CAs. */
const tls: SchemaNode = {
  ...obj({ ca: nullablePath, cert: nullablePath, key: nullablePath }),
  type: ["object", "null"],
};

const amqpSink = obj(
  {
    name,
    type: { const: "amqp" },
    url: amqpUrl,
    exchange: text,
    exchangeType: oneOfValues("topic", "direct", "fanout", "headers"),
    declareExchange: bool,
    format: oneOfValues("herald", "fedora-messaging"),
    topicPrefix: text,
    inFlight: int(1, 65535),
    // amqplib runs timers on it, and AMQP carries it as a 16-bit number of seconds.
    heartbeat: timer(0, 65_535_000, "AMQP sends the heartbeat as at most 65535 seconds"),
    tls,
    thread: bool,
  },
  ["name", "type"],
);

/** A CURVE public key in Z85 (what `herald keys show NAME` prints). */
export const Z85_KEY_PATTERN = "^[0-9a-zA-Z.:+=^!/*?&<>()\\[\\]{}@%$#-]{40}$";

/**
 * A value that may be a Z85 key or a path (security.serverKey): a key unless it ends in `.pub`. The Z85
 * alphabet has `/` and `.`, so a 40-character path such as `/etc/herald/keys/broker.host0001.pub` matches
 * the key pattern; a real key ends in `.pub` about once in 50 million.
 */
export function isZ85KeyValue(value: string): boolean {
  return new RegExp(Z85_KEY_PATTERN).test(value) && !value.endsWith(".pub");
}

const z85Key: SchemaNode = {
  type: ["string", "null"],
  pattern: Z85_KEY_PATTERN,
  description: "a 40-character Z85 CURVE public key (herald keys show NAME)",
};

const forwardSink = obj(
  { name, type: { const: "forward" }, endpoint, timeout: timer(1), serverKey: z85Key },
  ["name", "type", "endpoint"],
);

const zeromqSink = obj({ ...publishFields, type: { const: "zeromq" } }, ["name", "type", "endpoint"]);

const amqpSource = obj(
  {
    name,
    type: { const: "amqp" },
    url: amqpUrl,
    exchange: text,
    queue: text,
    bindings: list(text),
    format: oneOfValues("auto", "herald", "fedora-messaging"),
    ingest: bool,
  },
  ["name", "type"],
);

const byType = (...branches: SchemaNode[]): SchemaNode => ({
  type: "object",
  discriminator: { propertyName: "type" },
  oneOf: branches,
});

const legacyService = obj({
  stage: oneOfValues("legacy", "bridged", "retired"),
  endpoints: { type: ["array", "null"], items: endpoint },
});

/** The whole document. Nothing is required: an empty file (or no file) is a valid configuration. */
export const CONFIG_SCHEMA: SchemaNode = obj({
  paths: obj({ runtimeDir: path, dataDir: path }),
  broker: obj({
    name: { type: "string", pattern: "^\\S+$", description: "a non-empty name without spaces" },
    submit: obj({ ipc: bool, tcp: list(endpoint), maxBatch: int(1, 1_000_000) }),
    publish: list(obj(publishFields, ["name", "endpoint"])),
    sendHighWaterMark: int(0),
    publishDelay: timer(),
    // `herald serve` gives up on a stop that takes 2 s longer than this, with a timer.
    shutdownGrace: timer(
      0,
      TIMER_MAX_MS - 2000,
      "herald serve's exit timer waits 2s longer, at most 24.8 days",
    ),
    // No `type`: checks.ts (listenAddress) refuses every wrong shape with its own fix (a port alone, a
    // URL, IPv6 without brackets), where a schema type error could only say "expected a string".
    metrics: { description: "HOST:PORT for /metrics, /livez and /readyz (e.g. 127.0.0.1:9479), or null" },
  }),
  outbox: obj({
    path,
    synchronous: oneOfValues("full", "normal"),
    maxMessages: int(1, Number.MAX_SAFE_INTEGER),
    maxBytes: size(1),
    retention: duration(),
    dedupWindow: duration(),
  }),
  limits: obj({ maxBodyBytes: size(1) }),
  client: obj({ timeout: timer(1), retries: int(0, 1000) }),
  sinks: list(byType(amqpSink, forwardSink, zeromqSink)),
  sources: list(byType(amqpSource)),
  legacy: obj({
    enabled: bool,
    config: nullablePath,
    shimInBroker: bool,
    topicPrefix: { ...text, type: ["string", "null"] },
    environment: { ...text, type: ["string", "null"] },
    relayInbound: { ...endpoint, type: ["string", "null"] },
    grace: duration(),
    settle: duration(),
    // An age compared with the clock (stageSince + watchRetired), not a timer: no TIMER_MAX_MS cap.
    watchRetired: timer(
      0,
      3650 * 86_400_000,
      "10 years: the end of the watch is a date the evidence must be able to write",
    ),
    services: { type: "object", additionalProperties: legacyService },
  }),
  security: obj({
    keysDir: path,
    trustDir: path,
    identity: { type: ["string", "null"], minLength: 1 },
    curve: bool,
    requireSignatures: bool,
    strictTopics: bool,
    clockSkew: duration(),
    reloadInterval: timer(1),
    policy: { type: "object", additionalProperties: list(text) },
    forwarders: list(text),
    // A path (made absolute like the others) unless it is the key itself.
    serverKey: { type: ["string", "null"], minLength: 1, "x-unit": { kind: "path", orZ85Key: true } },
  }),
  schemas: obj({ dir: nullablePath, strict: bool }),
  log: obj({
    level: oneOfValues("debug", "info", "warn", "error"),
    format: oneOfValues("text", "json"),
  }),
});
