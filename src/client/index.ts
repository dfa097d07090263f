import { connectable } from "../config/endpoints.js";
import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { subscriberCurve } from "./security.js";

export { createClient } from "./create.js";
export type { Ack, ClientOptions, PublishOptions } from "./publisher.js";
export { HeraldClient } from "./publisher.js";
export type { Gap, ReceivedMessage, SubscriberOptions, SubscriberStats } from "./subscriber.js";
export { Subscriber } from "./subscriber.js";

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
    if (endpoints.length === 0) return [];
    // CURVE (herald format on tcp:// only): one key pair for all of them, the broker's server key.
    const curve = format === "herald" && config ? subscriberCurve(config, endpoints[0]!) : undefined;
    return [
      new ZmqSubscribeTransport({ name: `sub-${format}`, endpoints, format, ...(curve ? { curve } : {}) }),
    ];
  });
  return new Subscriber({ ...opts, sources, patterns, ownsSources: true });
}

/**
 * Dual-format consumer for the migration: the broker's herald PUB plus every legacy fedmsg endpoint
 * (from `legacy.config` and `legacy.services`), each id delivered once whichever path it came by. A
 * consumer written this way sees services in every stage: legacy ones (ingested, or read directly) and
 * bridged ones.
 */
export async function subscribeLegacyAndHerald(
  patterns: string[],
  opts: Omit<SubscribeOptions, "formats" | "endpoints"> & { legacy?: LegacyConfig } = {},
): Promise<Subscriber> {
  const config = opts.config ?? loadConfig({}).config;
  const legacy =
    opts.legacy ?? (config.legacy.config ? await loadLegacyConfig(config.legacy.config) : undefined);
  const owner = new Map<string, { host: string; app: string }>();
  for (const s of resolvePlan(config, legacy).services.values()) {
    if (s.stage === "retired") continue;
    for (const ep of s.endpoints) owner.set(ep, { host: s.host || "legacy", app: s.module });
  }
  const herald = config.broker.publish
    .filter((p) => p.format === "herald")
    .map((p) => connectable(p.endpoint));
  const sources = [
    ...(herald.length > 0
      ? [new ZmqSubscribeTransport({ name: "sub-herald", endpoints: herald, format: "herald" })]
      : []),
    ...(owner.size > 0
      ? [
          new ZmqSubscribeTransport({
            name: "sub-legacy",
            endpoints: [...owner.keys()],
            format: "legacy",
            legacyDefaults: (ep) => owner.get(ep) ?? {},
          }),
        ]
      : []),
  ];
  return new Subscriber({ ...opts, sources, patterns, ownsSources: true });
}

import { loadLegacyConfig } from "../legacy/config/load.js";
import type { LegacyConfig } from "../legacy/config/types.js";
import { resolvePlan } from "../shim/services.js";
