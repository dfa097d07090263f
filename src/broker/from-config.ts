import { clientSubmitEndpoint, connectable, ipcSubmitEndpoint } from "../config/endpoints.js";
import type { HeraldConfig, SinkConfig } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import { SchemaRegistry } from "../schemas/registry.js";
import { type Identity, loadIdentity } from "../security/keys.js";
import type { OutboxOptions } from "../storage/types.js";
import { AmqpTransport, type AmqpTransportOptions } from "../transport/amqp.js";
import { ThreadedAmqpSink } from "../transport/amqp-thread.js";
import { ForwardTransport } from "../transport/forward.js";
import type { Transport } from "../transport/types.js";
import { ZmqPublishTransport } from "../transport/zeromq-pub.js";
import type { Logger } from "../util/log.js";
import { type AdmissionCheck, Broker, type BrokerOptions } from "./broker.js";
import { BrokerSecurity, securityWanted } from "./security.js";

/**
 * One BrokerSecurity per loaded configuration, shared by buildSinks and brokerOptionsFromConfig (and
 * by callers such as `herald serve` that build the sinks themselves), so PUB sockets and the broker
 * agree on the ZAP domain. undefined when the security: section asks for nothing.
 */
const securityByConfig = new WeakMap<HeraldConfig, BrokerSecurity | null>();

export function brokerSecurity(config: HeraldConfig, log: Logger): BrokerSecurity | undefined {
  let sec = securityByConfig.get(config);
  if (sec === undefined) {
    const s = config.security;
    if (s.forwarders.length > 0 && !s.curve)
      throw new ConfigError(
        "CONFIG",
        "security.forwarders names CURVE identities, but security.curve is false: set security.curve: true (forwarders authenticate with CURVE), or remove security.forwarders",
      );
    sec = securityWanted(s)
      ? new BrokerSecurity({
          trustDir: s.trustDir,
          reloadIntervalMs: s.reloadInterval,
          requireSignatures: s.requireSignatures,
          clockSkewMs: s.clockSkew,
          policy: s.policy,
          strictTopics: s.strictTopics,
          forwarders: s.forwarders,
          curve: s.curve ? curveIdentity(config) : undefined,
          brokerName: config.broker.name,
          log: log.child("security"),
        })
      : null;
    securityByConfig.set(config, sec);
  }
  return sec ?? undefined;
}

/** security.identity's key pair; refuses a secret key file others can read (loadIdentity). */
function curveIdentity(config: HeraldConfig): Identity {
  const name = config.security.identity;
  if (name === null)
    throw new ConfigError(
      "CONFIG",
      "security.curve is true but security.identity is null: generate a key pair ('herald keys generate NAME') and set security.identity: NAME",
    );
  return loadIdentity(name, config.security.keysDir);
}

// Defined with the configuration, where a one-shot client finds them without loading the broker's modules.
export { clientSubmitEndpoint, connectable, ipcSubmitEndpoint };

export function submitEndpoints(config: HeraldConfig): string[] {
  return [...(config.broker.submit.ipc ? [ipcSubmitEndpoint(config)] : []), ...config.broker.submit.tcp];
}

export function buildSinks(config: HeraldConfig, log: Logger): Transport[] {
  const pubs = config.broker.publish.map((p) => publishSink(p, config, log));
  return [...pubs, ...config.sinks.map((s) => buildSink(s, config, log))];
}

/** A PUB socket; herald-format ones on tcp:// are CURVE servers when security.curve (legacy ones never). */
function publishSink(
  p: { name: string; endpoint: string; format: "herald" | "legacy" },
  config: HeraldConfig,
  log: Logger,
): ZmqPublishTransport {
  const sec = brokerSecurity(config, log);
  const curve = sec?.publishCurve(p.endpoint, p.format);
  return new ZmqPublishTransport({
    name: p.name,
    endpoint: p.endpoint,
    format: p.format,
    brokerName: config.broker.name,
    sendHighWaterMark: config.broker.sendHighWaterMark,
    maxMessageBytes: publishLimit(config, p.format),
    tooLargeHint: publishLimitHint(p.format),
    ...(curve && sec ? { curve, zapDomain: sec.zapDomain } : {}),
  });
}

/**
 * Largest envelope a PUB socket sends, so that every message the broker accepted fits. The body limit
 * counts UTF-8 bytes; fedmsg's ensure_ascii JSON writes a 2-byte character as 6 (`\u00e9`) and a 4-byte
 * one as 12 (a surrogate pair): up to 3x the body, and the same for header values. At 2x, a 1,000,000-byte
 * body of "é" was acknowledged and then passed over by the legacy socket.
 */
export function publishLimit(config: HeraldConfig, format: "herald" | "legacy"): number {
  const body = config.limits.maxBodyBytes;
  return format === "legacy" ? body * 3 + (256 << 10) : body * 2 + (64 << 10);
}

/** What a TOO_LARGE from a PUB socket tells the user to do: its limit follows limits.maxBodyBytes. */
export function publishLimitHint(format: "herald" | "legacy"): string {
  const formula =
    format === "legacy" ? "3 x limits.maxBodyBytes + 256 KiB" : "2 x limits.maxBodyBytes + 64 KiB";
  const grows =
    format === "legacy"
      ? "fedmsg's ASCII-only JSON writes DEL as 6 bytes and a non-ASCII character as 6 or 12"
      : "the envelope is the body plus its headers and fields";
  return `this socket's limit is ${formula} (${grows}): make the body smaller, or raise limits.maxBodyBytes (herald subscribers of such messages then need maxMessageBytes as large)`;
}

function buildSink(s: SinkConfig, config: HeraldConfig, log: Logger): Transport {
  switch (s.type) {
    case "zeromq":
      return publishSink(s, config, log);
    case "forward":
      return new ForwardTransport({
        name: s.name,
        endpoint: s.endpoint,
        brokerName: config.broker.name,
        timeoutMs: s.timeout,
        log: log.child(s.name),
        ...(s.serverKey
          ? { curve: { identity: forwardIdentity(config, s.name), serverKey: s.serverKey } }
          : {}),
      });
    case "amqp":
      return amqpSink(s, log);
  }
}

/** A forward sink with a serverKey speaks CURVE as this broker's identity. */
function forwardIdentity(config: HeraldConfig, sink: string): Identity {
  const name = config.security.identity;
  if (name === null)
    throw new ConfigError(
      "CONFIG",
      `sinks '${sink}' has a serverKey (CURVE) but security.identity is null: set security.identity to this broker's key pair`,
    );
  return loadIdentity(name, config.security.keysDir);
}

function amqpSink(s: Extract<SinkConfig, { type: "amqp" }>, log: Logger): Transport {
  const tls = s.tls
    ? Object.fromEntries(Object.entries(s.tls).filter((e): e is [string, string] => typeof e[1] === "string"))
    : undefined;
  const options: AmqpTransportOptions = {
    name: s.name,
    url: s.url,
    exchange: s.exchange,
    exchangeType: s.exchangeType,
    declareExchange: s.declareExchange,
    format: s.format,
    topicPrefix: s.topicPrefix,
    inFlight: s.inFlight,
    heartbeat: s.heartbeat,
    ...(tls ? { tls } : {}),
    log: (level, message, fields) => log.child(s.name)[level](message, fields),
  };
  // On its own thread by default: confirms then do not wait behind the broker's intake (docs/amqp.md).
  return s.thread ? new ThreadedAmqpSink(options) : new AmqpTransport(options);
}

export function brokerOptionsFromConfig(config: HeraldConfig, log: Logger): BrokerOptions {
  const sec = brokerSecurity(config, log);
  const schemas = bodySchemas(config, log);
  const admission = [...(sec ? [sec.admission] : []), ...(schemas ? [schemas] : [])];
  return {
    ...(sec
      ? {
          security: sec,
          submitSocketOptionsFor: (endpoint: string) => sec.submitSocketOptions(endpoint),
        }
      : {}),
    ...(admission.length > 0 ? { admission } : {}),
    name: config.broker.name,
    submitEndpoints: submitEndpoints(config),
    outbox: outboxOptions(config),
    sinks: buildSinks(config, log),
    maxBodyBytes: config.limits.maxBodyBytes,
    maxBatch: config.broker.submit.maxBatch,
    shutdownGraceMs: config.broker.shutdownGrace,
    publishDelayMs: config.broker.publishDelay,
    log,
  };
}

/**
 * The outbox from configuration. Ids are remembered at least twice security.clockSkew: a signed message
 * stays fresh from `sentAt - clockSkew` (a publisher's clock ahead) to `sentAt + clockSkew`, and a replay
 * inside that span must still meet the dedup store (with clockSkew 15m and the default 10m window, a
 * replay at minute 11 was stored again).
 */
export function outboxOptions(config: HeraldConfig): OutboxOptions {
  return {
    path: config.outbox.path,
    synchronous: config.outbox.synchronous,
    maxMessages: config.outbox.maxMessages,
    maxBytes: config.outbox.maxBytes,
    retentionMs: config.outbox.retention,
    dedupWindowMs: Math.max(config.outbox.dedupWindow, 2 * config.security.clockSkew),
  };
}

/** A broker from configuration; `extraSinks` (the in-broker shim, tests' own) join the configured ones. */
export function createBroker(
  config: HeraldConfig,
  log: Logger,
  extra: Partial<BrokerOptions> = {},
  extraSinks: Transport[] = [],
): Broker {
  const options = brokerOptionsFromConfig(config, log);
  return new Broker({ ...options, ...extra, sinks: [...options.sinks, ...extraSinks] });
}

/** The receive-side transport of a configured source (`sources[]`), by name. */
export function buildSource(config: HeraldConfig, name: string, log: Logger): Transport {
  const s = config.sources.find((x) => x.name === name);
  if (!s) {
    const known = config.sources.map((x) => x.name).join(", ") || "none configured";
    throw new ConfigError(
      "CONFIG",
      `no source named '${name}' (sources: ${known}): add it under sources: in the config`,
    );
  }
  return new AmqpTransport({
    name: s.name,
    url: s.url,
    exchange: s.exchange,
    queue: s.queue,
    bindings: s.bindings,
    format: s.format,
    log: (level, message, fields) => log.child(s.name)[level](message, fields),
  });
}

/** The body-schema check (schemas.dir), after the security checks: a forged message is refused as such. */
function bodySchemas(config: HeraldConfig, log: Logger): AdmissionCheck | undefined {
  if (config.schemas.dir === null) return undefined;
  const registry = new SchemaRegistry({ dir: config.schemas.dir, strict: config.schemas.strict });
  log.info("body schemas loaded", {
    dir: config.schemas.dir,
    schemas: registry.size,
    strict: config.schemas.strict,
  });
  return (m) => registry.check(m);
}
