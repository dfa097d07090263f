import type { HoldingSink, HoldNote } from "../broker/dispatcher.js";
import { ClosedError, HeraldError } from "../errors.js";
import type { StoredMessage } from "../storage/types.js";
import { initialHealth, type Subscription, type TransportHealth } from "../transport/types.js";
import type { CurveClientOptions } from "../transport/zeromq-common.js";
import { ZmqSubscribeTransport } from "../transport/zeromq-sub.js";
import type { Logger } from "../util/log.js";
import type { Message } from "../wire/message.js";
import type { Routed } from "./bridged.js";
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

/** What the in-broker shim's sink routes to: the shim's bridged services. */
export interface ShimRouter {
  /** Hand messages to their services; `served(owner, seq)` true means it went out before a restart: skip it. */
  route(batch: readonly Routed[], served?: (owner: string, seq: number) => boolean): void;
  /** Each bridged service holding messages for a port not bound yet, with the seq of its oldest held one. */
  heldFrom(): Map<string, number>;
  /** Held for a bridged service whose port is not bound yet, or dropped unsent (`herald trace`). */
  holdNote?(seq: number): HoldNote | undefined;
}

/** Saved with the sink's cursor: how far it took the stream, and from which seq each service still held. */
interface ShimCheckpoint {
  through: number;
  held: Record<string, number>;
}

/** A restart's view of the last run: through `after`, a service's messages went out unless held from `held`. */
interface Resumed {
  after: number;
  held: Map<string, number>;
}

/**
 * In-broker feed: a sink the broker's dispatcher feeds from the outbox with its own durable cursor, so
 * the shim misses nothing (no PUB high-water mark or slow joiner between broker and shim, and a restart
 * resumes where it stopped). `send` never fails: messages for a port not bound yet are held by the shim.
 *
 * Held messages live in memory, so the persisted cursor stays before the oldest of them (HoldingSink) and
 * a checkpoint says which services held from where: after a restart, clean or not, the held ones are
 * routed again and everything that already went out is skipped. The cursor is kept back by at most
 * `maxPin` messages, so a port that is never bound cannot fill the outbox (beyond that, the oldest held
 * messages would not survive a restart: logged).
 */
export class ShimSink implements HoldingSink {
  readonly name = "legacy-shim";
  readonly kind = "shim";
  private readonly state: TransportHealth = initialHealth();
  private closed = false;
  private resumed: Resumed | undefined;
  /** What the services held when the shim stopped (they are closed then): the final checkpoint keeps it. */
  private heldAtClose: Map<string, number> | undefined;
  private pinReleased = false;
  private readonly maxPin: number;

  constructor(
    private readonly router: ShimRouter,
    private readonly opts: { maxPin?: number; log?: Logger } = {},
  ) {
    this.maxPin = opts.maxPin ?? 100_000;
  }

  async open(): Promise<void> {
    this.state.state = "up";
  }

  async send(batch: readonly Message[]): Promise<void> {
    if (this.closed) throw new ClosedError("legacy shim sink");
    this.router.route(batch.map((message) => ({ message })));
    this.state.sent += batch.length;
  }

  async sendStored(rows: readonly StoredMessage[]): Promise<void> {
    if (this.closed) throw new ClosedError("legacy shim sink");
    const r = this.resumed;
    this.router.route(
      rows.map((row) => ({ message: row.message, seq: row.seq })),
      r && ((owner, seq) => seq <= r.after && seq < (r.held.get(owner) ?? Number.POSITIVE_INFINITY)),
    );
    this.state.sent += rows.length;
    const last = rows[rows.length - 1];
    if (r && last && last.seq >= r.after) this.resumed = undefined;
  }

  checkpoint(delivered: number): { cursor: number; state: string } {
    const held = new Map(this.heldAtClose ?? this.router.heldFrom());
    const r = this.resumed;
    // Not yet past what the last run took: what it held and we have not routed again is still owed.
    if (r && delivered < r.after)
      for (const [svc, from] of r.held) {
        const owed = Math.max(from, delivered + 1);
        held.set(svc, Math.min(held.get(svc) ?? owed, owed));
      }
    let oldest = delivered + 1;
    for (const seq of held.values()) oldest = Math.min(oldest, seq);
    const cursor = Math.min(delivered, Math.max(oldest - 1, delivered - this.maxPin));
    this.notePin(cursor > oldest - 1, held);
    const saved: ShimCheckpoint = {
      through: r && delivered < r.after ? r.after : delivered,
      held: Object.fromEntries(held),
    };
    return { cursor, state: JSON.stringify(saved) };
  }

  holdNote(seq: number): HoldNote | undefined {
    return this.router.holdNote?.(seq);
  }

  private notePin(released: boolean, held: Map<string, number>): void {
    if (released && !this.pinReleased)
      this.opts.log?.error(
        "messages held for a legacy port not bound yet are too far behind: the oldest no longer survive a restart",
        { services: [...held.keys()].join(","), maxPin: this.maxPin },
      );
    this.pinReleased = released;
  }

  resume(state: string | undefined, persisted: number, rewind: number): number {
    const saved = parseCheckpoint(state);
    if (saved === undefined) return Math.max(0, persisted - rewind);
    // After a crash the last `rewind` messages go out again anyway (a PUB may not have sent what it queued).
    const after = Math.max(0, saved.through - rewind);
    this.resumed = { after, held: new Map(Object.entries(saved.held)) };
    return Math.max(0, Math.min(persisted, after));
  }

  receive(): Subscription {
    throw new HeraldError("UNSUPPORTED", "the legacy shim sink only takes messages from the broker");
  }

  health(): TransportHealth {
    return structuredClone(this.state);
  }

  /** Refuse further messages and keep what the services hold now for the final checkpoint (shim stopping). */
  freeze(): void {
    if (this.closed) return;
    this.heldAtClose = this.router.heldFrom();
    this.closed = true;
  }

  async close(): Promise<void> {
    this.freeze();
    this.state.state = "closed";
  }
}

function parseCheckpoint(state: string | undefined): ShimCheckpoint | undefined {
  if (state === undefined) return undefined;
  try {
    const v = JSON.parse(state) as Partial<ShimCheckpoint>;
    const held = v.held;
    if (typeof held !== "object" || held === null) return undefined;
    const seqs = [v.through, ...Object.values(held)];
    if (!seqs.every((n) => Number.isSafeInteger(n) && (n as number) >= 0)) return undefined;
    return { through: v.through as number, held };
  } catch {
    return undefined;
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
  constructor(endpoint: string, route: (batch: readonly Routed[]) => void, curve?: CurveClientOptions) {
    this.t = new ZmqSubscribeTransport({ name: "shim-feed", endpoints: [endpoint], format: "herald", curve });
    const sub = this.t.receive({ patterns: ["#"] });
    this.sub = sub;
    this.loop = (async () => {
      try {
        for await (const d of sub) route([{ message: d.message }]);
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
