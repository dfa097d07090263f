import { join } from "node:path";
import type { HeraldConfig, SinkConfig } from "../config/schema.js";
import { AmqpTransport } from "../transport/amqp.js";
import { ForwardTransport } from "../transport/forward.js";
import type { Transport } from "../transport/types.js";
import { ZmqPublishTransport } from "../transport/zeromq-pub.js";
import type { Logger } from "../util/log.js";
import { Broker, type BrokerOptions } from "./broker.js";

/** The IPC submit endpoint every client finds without configuration. */
export function ipcSubmitEndpoint(config: HeraldConfig): string {
  return `ipc://${join(config.paths.runtimeDir, "submit.sock")}`;
}

/** Where clients submit: IPC when enabled, else the first TCP endpoint (0.0.0.0 becomes 127.0.0.1). */
export function clientSubmitEndpoint(config: HeraldConfig): string {
  if (config.broker.submit.ipc) return ipcSubmitEndpoint(config);
  const tcp = config.broker.submit.tcp[0];
  return tcp ? connectable(tcp) : ipcSubmitEndpoint(config);
}

/** A bound endpoint as a client would connect to it. */
export function connectable(endpoint: string): string {
  return endpoint.replace("://0.0.0.0:", "://127.0.0.1:").replace("://*:", "://127.0.0.1:");
}

export function submitEndpoints(config: HeraldConfig): string[] {
  return [...(config.broker.submit.ipc ? [ipcSubmitEndpoint(config)] : []), ...config.broker.submit.tcp];
}

export function buildSinks(config: HeraldConfig, log: Logger): Transport[] {
  const pubs = config.broker.publish.map(
    (p) =>
      new ZmqPublishTransport({
        name: p.name,
        endpoint: p.endpoint,
        format: p.format,
        brokerName: config.broker.name,
        sendHighWaterMark: config.broker.sendHighWaterMark,
        maxMessageBytes: config.limits.maxBodyBytes * 2 + 65536,
      }),
  );
  return [...pubs, ...config.sinks.map((s) => buildSink(s, config, log))];
}

function buildSink(s: SinkConfig, config: HeraldConfig, log: Logger): Transport {
  switch (s.type) {
    case "zeromq":
      return new ZmqPublishTransport({
        name: s.name,
        endpoint: s.endpoint,
        format: s.format,
        brokerName: config.broker.name,
        sendHighWaterMark: config.broker.sendHighWaterMark,
        maxMessageBytes: config.limits.maxBodyBytes * 2 + 65536,
      });
    case "forward":
      return new ForwardTransport({
        name: s.name,
        endpoint: s.endpoint,
        brokerName: config.broker.name,
        timeoutMs: s.timeout,
      });
    case "amqp":
      return amqpSink(s, log);
  }
}

function amqpSink(s: Extract<SinkConfig, { type: "amqp" }>, log: Logger): Transport {
  const tls = s.tls
    ? Object.fromEntries(Object.entries(s.tls).filter((e): e is [string, string] => typeof e[1] === "string"))
    : undefined;
  return new AmqpTransport({
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
  });
}

export function brokerOptionsFromConfig(config: HeraldConfig, log: Logger): BrokerOptions {
  return {
    name: config.broker.name,
    submitEndpoints: submitEndpoints(config),
    outbox: {
      path: config.outbox.path,
      synchronous: config.outbox.synchronous,
      maxMessages: config.outbox.maxMessages,
      maxBytes: config.outbox.maxBytes,
      retentionMs: config.outbox.retention,
      dedupWindowMs: config.outbox.dedupWindow,
    },
    sinks: buildSinks(config, log),
    maxBodyBytes: config.limits.maxBodyBytes,
    maxBatch: config.broker.submit.maxBatch,
    shutdownGraceMs: config.broker.shutdownGrace,
    publishDelayMs: 500,
    log,
  };
}

export function createBroker(config: HeraldConfig, log: Logger, extra: Partial<BrokerOptions> = {}): Broker {
  return new Broker({ ...brokerOptionsFromConfig(config, log), ...extra });
}
