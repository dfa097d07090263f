import { clientSubmitEndpoint } from "../broker/from-config.js";
import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { type ClientOptions, HeraldClient } from "./publisher.js";

export type { Ack, ClientOptions, PublishOptions } from "./publisher.js";
export { HeraldClient } from "./publisher.js";
export type { Gap, ReceivedMessage, SubscriberOptions, SubscriberStats } from "./subscriber.js";
export { Subscriber } from "./subscriber.js";

/**
 * A client for the local broker with zero configuration: the endpoint, timeout and retries come from
 * herald's configuration (file, environment or defaults) unless given.
 */
export function createClient(opts: ClientOptions & { config?: HeraldConfig } = {}): HeraldClient {
  const config = opts.config ?? (opts.endpoint === undefined ? loadConfig({}).config : undefined);
  return new HeraldClient({
    ...opts,
    endpoint: opts.endpoint ?? clientSubmitEndpoint(config!),
    timeoutMs: opts.timeoutMs ?? config?.client.timeout ?? 2500,
    retries: opts.retries ?? config?.client.retries ?? 3,
    maxBodyBytes: opts.maxBodyBytes ?? config?.limits.maxBodyBytes ?? 1 << 20,
    maxBatch: opts.maxBatch ?? config?.broker.submit.maxBatch ?? 1000,
  });
}

import { connectable } from "../broker/from-config.js";
import { ZmqSubscribeTransport } from "../transport/zeromq-sub.js";
import type { Logger } from "../util/log.js";
import { Subscriber, type SubscriberOptions } from "./subscriber.js";

export interface SubscribeOptions extends Omit<SubscriberOptions, "sources" | "patterns"> {
  config?: HeraldConfig;
  /** Which of the broker's PUB sockets to read: herald, legacy, or both (dual-format, each id once). Default herald. */
  formats?: Array<"herald" | "legacy">;
  /** Explicit PUB endpoints by format, instead of the configured broker.publish sockets. */
  endpoints?: { herald?: string[]; legacy?: string[] };
  log?: Logger;
}

/**
 * Subscribe to the local broker's PUB sockets: an async iterator of normalized messages whatever the
 * wire format, with AMQP-style patterns applied exactly, each id delivered once and gaps reported.
 */
export function subscribe(patterns: string[], opts: SubscribeOptions = {}): Subscriber {
  const formats = opts.formats ?? ["herald"];
  const config = opts.endpoints ? opts.config : (opts.config ?? loadConfig({}).config);
  const sources = formats.flatMap((format) => {
    const endpoints =
      opts.endpoints?.[format] ??
      config?.broker.publish.filter((p) => p.format === format).map((p) => connectable(p.endpoint)) ??
      [];
    return endpoints.length === 0
      ? []
      : [new ZmqSubscribeTransport({ name: `sub-${format}`, endpoints, format })];
  });
  return new Subscriber({ ...opts, sources, patterns });
}
