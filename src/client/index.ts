import { connectable } from "../config/endpoints.js";
import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import type { Transport } from "../transport/types.js";
import type { CurveClientOptions } from "../transport/zeromq-common.js";
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
    if (endpoints.length === 0)
      throw new ConfigError(
        "CONFIG",
        `no ${format}-format PUB socket to subscribe to: add one to broker.publish, or pass endpoints.${format}`,
      );
    if (format === "herald") return heraldSources(config, endpoints, `sub-${format}`);
    return [new ZmqSubscribeTransport({ name: `sub-${format}`, endpoints, format })];
  });
  return new Subscriber({ ...opts, sources, patterns, ownsSources: true });
}

/**
 * Transports for herald-format PUB endpoints: the broker makes those on tcp:// CURVE servers when
 * security.curve is on and leaves ipc:// plain, so the endpoints are grouped by what each one needs.
 */
function heraldSources(config: HeraldConfig | undefined, endpoints: string[], name: string): Transport[] {
  const plain: string[] = [];
  const curved: string[] = [];
  let curve: CurveClientOptions | undefined;
  for (const ep of endpoints) {
    const c = config ? subscriberCurve(config, ep) : undefined;
    if (c === undefined) plain.push(ep);
    else {
      curve = c;
      curved.push(ep);
    }
  }
  return [
    ...(plain.length > 0 ? [new ZmqSubscribeTransport({ name, endpoints: plain, format: "herald" })] : []),
    ...(curve
      ? [new ZmqSubscribeTransport({ name: `${name}-curve`, endpoints: curved, format: "herald", curve })]
      : []),
  ];
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
  const owner = new Map<string, { host: string; app: string; counts: boolean }>();
  for (const s of resolvePlan(config, legacy).services.values()) {
    if (s.stage === "retired") continue;
    // An app's own port numbers its messages with `i`; fedmsg-relay passes on each publisher's.
    const counts = s.name !== RELAY_OUTBOUND;
    for (const ep of s.endpoints) owner.set(ep, { host: s.host || "legacy", app: s.module, counts });
  }
  const herald = config.broker.publish
    .filter((p) => p.format === "herald")
    .map((p) => connectable(p.endpoint));
  const sources = [
    ...(herald.length > 0 ? heraldSources(config, herald, "sub-herald") : []),
    ...(owner.size > 0
      ? [
          new ZmqSubscribeTransport({
            name: "sub-legacy",
            endpoints: [...owner.keys()],
            format: "legacy",
            legacyDefaults: (ep) => owner.get(ep) ?? {},
            legacySequence: (ep) => owner.get(ep)?.counts ?? false,
          }),
        ]
      : []),
  ];
  return new Subscriber({ ...opts, sources, patterns, ownsSources: true });
}

import { loadLegacyConfig } from "../legacy/config/load.js";
import type { LegacyConfig } from "../legacy/config/types.js";
import { RELAY_OUTBOUND } from "../shim/feed.js";
import { resolvePlan } from "../shim/services.js";
