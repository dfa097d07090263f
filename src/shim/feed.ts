import { ClosedError, HeraldError } from "../errors.js";
import {
  initialHealth,
  type Subscription,
  type Transport,
  type TransportHealth,
} from "../transport/types.js";
import type { CurveClientOptions } from "../transport/zeromq-common.js";
import { ZmqSubscribeTransport } from "../transport/zeromq-sub.js";
import type { Message } from "../wire/message.js";
import { INGESTED_FROM, RELAY_INBOUND, VOUCHED } from "./ingest.js";
import type { ShimPlan, ShimService } from "./services.js";

/** fedmsg's conventional name for the relay's PUB endpoints in the `endpoints` dict. */
export const RELAY_OUTBOUND = "relay_outbound";

/**
 * Which bridged service (if any) a herald message belongs to, i.e. on whose old ports it is served:
 *
 * - Messages ingested from legacy publishers (`herald.vouched = legacy`) are never re-served on a
 *   service's ports: their publisher still serves them on its own ports, and old subscribers connect to
 *   every endpoint, so a second copy would be a duplicate (and the service's own would loop). The one
 *   exception is relay traffic: what active publishers sent to relay_inbound reached old subscribers via
 *   fedmsg-relay's `relay_outbound` PUB, so when `relay_outbound` is bridged the shim serves it there.
 * - Otherwise the topic must be `<topic_prefix>.<environment>.<module>.…` with module = the service
 *   name's part before the first dot. When several services share a module (bodhi.app01, bodhi.app02),
 *   the message's origin.host must also match the service's host part (full or short name).
 */
export function ownerOf(msg: Message, plan: ShimPlan, bridged: ReadonlySet<string>): string | undefined {
  if (msg.headers[VOUCHED] === "legacy") {
    return msg.headers[INGESTED_FROM] === RELAY_INBOUND && bridged.has(RELAY_OUTBOUND)
      ? RELAY_OUTBOUND
      : undefined;
  }
  const base = `${plan.topicPrefix}.${plan.environment}.`;
  if (!msg.topic.startsWith(base)) return undefined;
  const module = msg.topic.slice(base.length).split(".", 1)[0];
  const candidates = [...plan.services.values()].filter((s) => s.module === module);
  if (candidates.length === 0) return undefined;
  const owner =
    candidates.length === 1 ? candidates[0] : candidates.find((s) => sameHost(s, msg.origin.host));
  return owner && bridged.has(owner.name) ? owner.name : undefined;
}

function sameHost(s: ShimService, host: string): boolean {
  return s.host === host || s.host.split(".")[0] === host.split(".")[0];
}

/**
 * In-broker feed: a sink the broker's dispatcher feeds from the outbox with its own durable cursor, so
 * the shim misses nothing (no PUB high-water mark or slow joiner between broker and shim, and a restart
 * resumes where it stopped). `send` never fails: messages for a port not bound yet are held by the shim.
 */
export class ShimSink implements Transport {
  readonly name = "legacy-shim";
  readonly kind = "shim";
  private readonly state: TransportHealth = initialHealth();
  private closed = false;

  constructor(private readonly route: (batch: readonly Message[]) => void) {}

  async open(): Promise<void> {
    this.state.state = "up";
  }

  async send(batch: readonly Message[]): Promise<void> {
    if (this.closed) throw new ClosedError("legacy shim sink");
    this.route(batch);
    this.state.sent += batch.length;
  }

  receive(): Subscription {
    throw new HeraldError("UNSUPPORTED", "the legacy shim sink only takes messages from the broker");
  }

  health(): TransportHealth {
    return structuredClone(this.state);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.state.state = "closed";
  }
}

/**
 * Standalone feed (`herald shim` in its own process): read the broker's herald PUB socket. Loses what a
 * PUB loses (messages while the shim is down or past the high-water mark); gaps show in `seq`.
 */
export class PubFeed {
  private readonly t: ZmqSubscribeTransport;
  private readonly sub: Subscription;
  private readonly loop: Promise<void>;

  /** `curve`: client keys when the broker's herald PUB speaks CURVE (security.curve, tcp://). */
  constructor(endpoint: string, route: (batch: readonly Message[]) => void, curve?: CurveClientOptions) {
    this.t = new ZmqSubscribeTransport({ name: "shim-feed", endpoints: [endpoint], format: "herald", curve });
    const sub = this.t.receive({ patterns: ["#"] });
    this.sub = sub;
    this.loop = (async () => {
      try {
        for await (const d of sub) route([d.message]);
      } catch {
        // closed
      }
    })();
  }

  async close(): Promise<void> {
    await this.sub.close();
    await this.t.close();
    await this.loop;
  }
}
