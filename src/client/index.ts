import { connectable } from "../config/endpoints.js";
import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import type { Transport } from "../transport/types.js";
import type { CurveClientOptions } from "../transport/zeromq-common.js";
import { subscriberCurve } from "./security.js";

export { createClient } from "./create.js";
export type { Ack, ClientOptions, JsonInputs, PublishOptions } from "./publisher.js";
export { HeraldClient } from "./publisher.js";
export type { Gap, ReceivedMessage, SubscriberOptions, SubscriberStats } from "./subscriber.js";
export { Subscriber } from "./subscriber.js";

import { ZmqSubscribeTransport } from "../transport/zeromq-sub.js";
import type { Logger } from "../util/log.js";
import { Subscriber, type SubscriberOptions } from "./subscriber.js";

export interface SubscribeOptions extends Omit<SubscriberOptions, "sources" | "patterns"> {
  config?: HeraldConfig;
  /** Which of the broker's PUB sockets to read: herald, legacy, or both (dual-format, each id once). Default herald. */
  formats?: ReadonlyArray<"herald" | "legacy">;
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
  for (const f of formats as readonly unknown[])
    if (f !== "herald" && f !== "legacy")
      throw new HeraldError(
        "BAD_REQUEST",
        `formats: ${JSON.stringify(f)} is not a format of the broker's PUB sockets: use "herald" and/or "legacy"${f === "fedora-messaging" ? " (fedora-messaging is an AMQP sink format: consume it from RabbitMQ)" : ""}`,
      );
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

/** Who publishes on a legacy endpoint, for what fedmsg envelopes do not say. */
interface LegacyOwner {
  host: string;
  app: string;
  /** An app's own port numbers its messages with `i`; fedmsg-relay passes on each publisher's. */
  counts: boolean;
}

export interface LegacyAndHeraldOptions extends Omit<SubscribeOptions, "formats" | "endpoints"> {
  legacy?: LegacyConfig;
  /**
   * The herald config file whose stages to follow: when its mtime changes, stages are read again and the
   * subscriber leaves the old ports of services no longer `legacy` (and joins those that are again).
   * Default: the file found by loadConfig when `config` is not given; none when it is (call `restage()`).
   */
  configFile?: string;
  /** How often to look at configFile's mtime; default 1000 ms, as the shim does. */
  restageIntervalMs?: number;
}

/**
 * Dual-format consumer for the migration: the broker's herald PUB plus the old fedmsg ports of every
 * service in stage `legacy` (from `legacy.config` and `legacy.services`), each id delivered once
 * whichever path it came by. Bridged services' messages come through herald's PUB; their old ports are
 * left alone, since the shim counts whoever connects there as an old subscriber still to be moved (and
 * would never let the service retire). The stages are followed as they change (see `configFile`).
 */
export async function subscribeLegacyAndHerald(
  patterns: string[],
  opts: LegacyAndHeraldOptions = {},
): Promise<LegacyAndHeraldSubscriber> {
  const loaded = opts.config ? { config: opts.config, file: undefined } : loadConfig({});
  const config = loaded.config;
  const legacy =
    opts.legacy ?? (config.legacy.config ? await loadLegacyConfig(config.legacy.config) : undefined);
  const ports = new LegacyPorts(legacyOwners(config, legacy));
  const herald = config.broker.publish
    .filter((p) => p.format === "herald")
    .map((p) => connectable(p.endpoint));
  const sources = [...(herald.length > 0 ? heraldSources(config, herald, "sub-herald") : []), ports];
  const file = opts.configFile ?? loaded.file;
  return new LegacyAndHeraldSubscriber({ ...opts, sources, patterns, ownsSources: true }, ports, {
    ...(file !== undefined ? { file } : {}),
    ...(opts.legacy ? { legacy: opts.legacy } : {}),
    intervalMs: opts.restageIntervalMs ?? 1000,
  });
}

/** The endpoints to read directly: those of services in stage legacy only. */
function legacyOwners(config: HeraldConfig, legacy: LegacyConfig | undefined): Map<string, LegacyOwner> {
  const owner = new Map<string, LegacyOwner>();
  for (const s of resolvePlan(config, legacy).services.values()) {
    if (s.stage !== "legacy") continue;
    const counts = s.name !== RELAY_OUTBOUND;
    for (const ep of s.endpoints) owner.set(ep, { host: s.host || "legacy", app: s.module, counts });
  }
  return owner;
}

/** subscribeLegacyAndHerald's subscriber: follows stage changes of the config file, or `restage()`. */
export class LegacyAndHeraldSubscriber extends Subscriber {
  private readonly timer: NodeJS.Timeout | undefined;
  private mtime: number;
  private restaging: Promise<void> = Promise.resolve();

  constructor(
    opts: SubscriberOptions,
    private readonly ports: LegacyPorts,
    private readonly follow: { file?: string; legacy?: LegacyConfig; intervalMs: number },
  ) {
    super(opts);
    const file = follow.file;
    this.mtime = file === undefined ? 0 : mtimeOf(file);
    if (file === undefined) return;
    this.timer = setInterval(() => {
      const m = mtimeOf(file);
      if (m === this.mtime) return;
      this.mtime = m;
      this.restage().catch((err: unknown) =>
        (opts.log ?? silentLogger).warn("stages not reloaded; keeping the ports read now", {
          file,
          err: (err as Error).message,
        }),
      );
    }, follow.intervalMs);
    this.timer.unref();
  }

  /**
   * Read the stages again (from `config`, else the followed file) and read the old ports of the services
   * in stage legacy only. Serialized; resolves once the ports left are closed.
   */
  restage(config?: HeraldConfig, legacy?: LegacyConfig): Promise<void> {
    const run = this.restaging.then(async () => {
      const file = this.follow.file;
      if (config === undefined && file === undefined)
        throw new ConfigError("CONFIG", "restage() needs a config: this subscriber follows no config file");
      const c = config ?? loadConfig({ configPath: file! }).config;
      const l =
        legacy ??
        this.follow.legacy ??
        (c.legacy.config ? await loadLegacyConfig(c.legacy.config) : undefined);
      await this.ports.set(legacyOwners(c, l));
    });
    this.restaging = run.catch(() => {});
    return run;
  }

  /** The old fedmsg endpoints read now. */
  legacyEndpoints(): string[] {
    return this.ports.endpoints();
  }

  override async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await super.close();
  }
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Deliveries held for a slow consumer before the readers wait (as the Subscriber bounds its own). */
const MERGED_LIMIT = 1000;

/**
 * The old ports as one source whose endpoints can change: one ZmqSubscribeTransport per endpoint (each
 * closed on its own when its service leaves stage legacy), merged into one stream for the Subscriber,
 * which dedups across this and the herald sources as before.
 */
class LegacyPorts implements Transport {
  readonly kind = "zeromq";
  readonly name = "sub-legacy";
  private readonly reading = new Map<string, { t: ZmqSubscribeTransport; sub: Subscription }>();
  private readonly queue = new AsyncQueue<Delivery>();
  private options: ReceiveOptions | undefined;
  private closed = false;

  constructor(private owners: Map<string, LegacyOwner>) {}

  endpoints(): string[] {
    return [...this.reading.keys()];
  }

  async open(): Promise<void> {}

  async set(owners: Map<string, LegacyOwner>): Promise<void> {
    this.owners = owners;
    if (!this.options || this.closed) return;
    for (const ep of [...this.reading.keys()]) if (!owners.has(ep)) await this.leave(ep);
    // closed meanwhile (close() while a restage waited on a socket): open nothing new
    for (const ep of owners.keys()) if (!this.closed && !this.reading.has(ep)) this.join(ep, this.options);
  }

  private join(ep: string, options: ReceiveOptions): void {
    const t = new ZmqSubscribeTransport({
      name: "sub-legacy",
      endpoints: [ep],
      format: "legacy",
      legacyDefaults: () => this.owners.get(ep) ?? {},
      legacySequence: () => this.owners.get(ep)?.counts ?? false,
    });
    const sub = t.receive(options);
    this.reading.set(ep, { t, sub });
    void this.pump(sub);
  }

  private async leave(ep: string): Promise<void> {
    const o = this.reading.get(ep);
    this.reading.delete(ep);
    await o?.sub.close();
    await o?.t.close();
  }

  private async pump(sub: Subscription): Promise<void> {
    try {
      for await (const d of sub) {
        this.queue.push(d);
        while (this.queue.size > MERGED_LIMIT && !this.closed) await sleep(5);
      }
    } catch {
      // closed while reading: the endpoint was left
    }
  }

  receive(options: ReceiveOptions): Subscription {
    if (this.options) throw new HeraldError("UNSUPPORTED", "the legacy ports source is read once");
    this.options = options;
    for (const ep of this.owners.keys()) this.join(ep, options);
    return { [Symbol.asyncIterator]: () => this.queue[Symbol.asyncIterator](), close: () => this.close() };
  }

  async send(_batch: readonly Message[]): Promise<void> {
    throw new HeraldError("UNSUPPORTED", "the legacy ports source only receives");
  }

  health(): TransportHealth {
    const h = initialHealth();
    for (const { t } of this.reading.values()) {
      const one = t.health();
      h.received += one.received;
      for (const [k, v] of Object.entries(one.counters)) h.counters[k] = (h.counters[k] ?? 0) + v;
      if (one.state === "up") h.state = "up";
    }
    if (this.closed) h.state = "closed";
    return h;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ep of [...this.reading.keys()]) await this.leave(ep);
    this.queue.close();
  }
}

import { statSync } from "node:fs";
import { HeraldError } from "../errors.js";
import { loadLegacyConfig } from "../legacy/config/load.js";
import type { LegacyConfig } from "../legacy/config/types.js";
import { RELAY_OUTBOUND } from "../shim/feed.js";
import { resolvePlan } from "../shim/services.js";
import {
  type Delivery,
  initialHealth,
  type ReceiveOptions,
  type Subscription,
  type TransportHealth,
} from "../transport/types.js";
import { sleep } from "../util/backoff.js";
import { silentLogger } from "../util/log.js";
import { AsyncQueue } from "../util/queue.js";
import type { Message } from "../wire/message.js";
