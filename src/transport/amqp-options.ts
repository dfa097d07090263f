import { readFileSync } from "node:fs";
import type { SocketOptions } from "amqplib";
import { ConfigError } from "../errors.js";
import { amqpUrlProblem, redactUrl } from "../util/amqp-url.js";
import type { AmqpFormat } from "../wire/fedora-messaging.js";

/** Options of one AMQP sink or source, as in the `sinks`/`sources` entries of herald.yaml. */
export interface AmqpTransportOptions {
  name: string;
  /** `amqp://user:pass@host:5672/vhost` or `amqps://...` (TLS). */
  url: string;
  /** Default `amq.topic`. */
  exchange?: string;
  /** Default `topic`. */
  exchangeType?: string;
  /** true (default): declare the exchange durable; false: only check it exists (locked-down vhosts). */
  declareExchange?: boolean;
  /** Sink: herald (default) or fedora-messaging. Source: auto (default) picks by content type. */
  format?: AmqpFormat | "auto";
  /** fedora-messaging routing-key prefix: routing key = `prefix.topic`. */
  topicPrefix?: string;
  /** Unconfirmed publishes at most (default 256). */
  inFlight?: number;
  /** AMQP heartbeat in ms (default 15 s; 0 disables). Sent to the broker rounded up to seconds. */
  heartbeat?: number;
  tls?: { ca?: string; cert?: string; key?: string; passphrase?: string; servername?: string };
  /** Source queue: "" or absent = temporary exclusive auto-delete queue; a name = durable named queue. */
  queue?: string;
  /** Extra arguments for the named queue declaration (x-queue-type, x-max-length...). */
  queueArguments?: Record<string, unknown>;
  /** Source binding patterns used when `receive()` is given none. Default ["#"]. */
  bindings?: readonly string[];
  /** Source prefetch (default 100). */
  prefetch?: number;
  /** A publish not confirmed within this many ms is published again (default 10 s). */
  confirmTimeout?: number;
  /** Backoff after a nack: first delay and cap in ms (default 100 ms doubling to 10 s). */
  retryInitialDelay?: number;
  retryMaxDelay?: number;
  /** Backoff between reconnect attempts (default 100 ms doubling to 10 s). */
  reconnectInitialDelay?: number;
  reconnectMaxDelay?: number;
  /** TCP connect timeout in ms (default 10 s). */
  connectTimeout?: number;
  /** Where warnings go; default: stderr for warn and error. */
  log?: AmqpLogger;
}

export type AmqpLogLevel = "debug" | "info" | "warn" | "error";
export type AmqpLogger = (level: AmqpLogLevel, message: string, fields?: Record<string, unknown>) => void;

export type ResolvedAmqpOptions = Required<Omit<AmqpTransportOptions, "tls" | "queueArguments">> &
  Pick<AmqpTransportOptions, "tls" | "queueArguments">;

export function resolveAmqpOptions(o: AmqpTransportOptions): ResolvedAmqpOptions {
  if (!/^amqps?:\/\//.test(o.url))
    throw new ConfigError(
      "CONFIG",
      `AMQP url '${redactUrl(o.url)}' of '${o.name}' must start with amqp:// or amqps://`,
    );
  const urlProblem = amqpUrlProblem(o.url);
  if (urlProblem !== undefined)
    throw new ConfigError("CONFIG", `AMQP url '${redactUrl(o.url)}' of '${o.name}': ${urlProblem}`);
  if (o.tls && o.url.startsWith("amqp://"))
    throw new ConfigError(
      "CONFIG",
      `'${o.name}' has tls options but an amqp:// url: use amqps:// (usually port 5671) to enable TLS`,
    );
  const r: ResolvedAmqpOptions = {
    name: o.name,
    url: o.url,
    exchange: o.exchange ?? "amq.topic",
    exchangeType: o.exchangeType ?? "topic",
    declareExchange: o.declareExchange ?? true,
    // auto: a source takes both formats (sinkFormat() makes a sink's auto publish herald's).
    format: o.format ?? "auto",
    topicPrefix: o.topicPrefix ?? "",
    inFlight: o.inFlight ?? 256,
    heartbeat: o.heartbeat ?? 15_000,
    tls: o.tls,
    queue: o.queue ?? "",
    queueArguments: o.queueArguments,
    bindings: o.bindings ?? ["#"],
    prefetch: o.prefetch ?? 100,
    confirmTimeout: o.confirmTimeout ?? 10_000,
    retryInitialDelay: o.retryInitialDelay ?? 100,
    retryMaxDelay: o.retryMaxDelay ?? 10_000,
    reconnectInitialDelay: o.reconnectInitialDelay ?? 100,
    reconnectMaxDelay: o.reconnectMaxDelay ?? 10_000,
    connectTimeout: o.connectTimeout ?? 10_000,
    log: o.log ?? stderrLogger(o.name),
  };
  for (const k of ["inFlight", "prefetch", "confirmTimeout"] as const) {
    if (!Number.isInteger(r[k]) || r[k] < 1)
      throw new ConfigError("CONFIG", `'${o.name}'.${k} must be a positive integer, got ${r[k]}`);
  }
  return r;
}

/** The format a sink publishes in: a sink's `auto` (meaningful for sources only) publishes herald's. */
export function sinkFormat(o: Pick<ResolvedAmqpOptions, "format">): AmqpFormat {
  return o.format === "fedora-messaging" ? "fedora-messaging" : "herald";
}

function stderrLogger(name: string): AmqpLogger {
  return (level, message, fields) => {
    if (level !== "warn" && level !== "error") return;
    const extra = fields ? ` ${JSON.stringify(fields)}` : "";
    process.stderr.write(`herald amqp[${name}] ${level}: ${message}${extra}\n`);
  };
}

/** The url and socket options handed to amqplib's `connect` (exported so tests can check them). */
export function buildConnectArgs(o: ResolvedAmqpOptions): { url: string; socketOptions: SocketOptions } {
  const url = new URL(o.url);
  // amqplib takes the heartbeat (seconds) from the url query; an explicit query value wins.
  if (!url.searchParams.has("heartbeat"))
    url.searchParams.set("heartbeat", String(Math.ceil(o.heartbeat / 1000)));
  const socketOptions: SocketOptions = {
    timeout: o.connectTimeout,
    noDelay: true,
    keepAlive: true,
    clientProperties: { connection_name: `herald:${o.name}:${process.pid}` },
  };
  if (o.tls) {
    const read = (what: string, path: string): Buffer => {
      try {
        return readFileSync(path);
      } catch (err) {
        throw new ConfigError(
          "CONFIG",
          `cannot read TLS ${what} '${path}' for '${o.name}': ${(err as Error).message}; fix the tls.${what} path or its permissions`,
          { cause: err },
        );
      }
    };
    if (o.tls.ca) socketOptions.ca = [read("ca", o.tls.ca)];
    if (o.tls.cert) socketOptions.cert = read("cert", o.tls.cert);
    if (o.tls.key) socketOptions.key = read("key", o.tls.key);
    if (o.tls.passphrase) socketOptions.passphrase = o.tls.passphrase;
    if (o.tls.servername) socketOptions.servername = o.tls.servername;
  }
  return { url: url.toString(), socketOptions };
}

export { redactUrl } from "../util/amqp-url.js";

/**
 * Capped exponential backoff with jitter: attempt 1 waits `initial`, doubling up to `max`, plus up to 20 %
 * random jitter so that many retries do not move in lockstep. Never below `initial` (no tight loops).
 */
export function backoffDelay(attempt: number, initial: number, max: number): number {
  const base = Math.min(max, initial * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(base * (1 + Math.random() * 0.2));
}

/**
 * A check that warns once per sink when a topic already begins with the sink's topicPrefix: its routing
 * key then repeats the prefix (org.fedoraproject.prod.org.fedoraproject.prod.bodhi...), consumers bound
 * on the single prefix get nothing and RabbitMQ returns the messages unroutable. Topics ingested from
 * fedmsg carry fedmsg's prefix already, so the pairing is an easy mistake. Undefined with no prefix.
 */
export function repeatedPrefixCheck(
  prefix: string,
  sink: string,
  log: AmqpLogger,
): ((topic: string) => void) | undefined {
  if (prefix === "") return undefined;
  const dotted = `${prefix}.`;
  let warned = false;
  return (topic) => {
    if (warned || !topic.startsWith(dotted)) return;
    warned = true;
    log(
      "warn",
      `AMQP sink '${sink}': topic ${topic} already begins with its topicPrefix, so the routing key is ${dotted}${topic} and bindings on ${topic} get nothing; topics from the fedmsg shim carry their prefix already: set this sink's topicPrefix to "" (warned once)`,
      { sink, topic, topicPrefix: prefix },
    );
  };
}
