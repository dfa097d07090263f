import { HeraldClient } from "../client/publisher.js";
import { ClosedError, HeraldError, rejected } from "../errors.js";
import type { Identity } from "../security/keys.js";
import type { Message } from "../wire/message.js";
import {
  bump,
  initialHealth,
  noteError,
  type Subscription,
  type Transport,
  type TransportHealth,
} from "./types.js";

export interface ForwardOptions {
  name: string;
  /** The other broker's submit endpoint. */
  endpoint: string;
  /** This broker's name, appended to each message's `via` so a loop back here is stopped. */
  brokerName: string;
  timeoutMs?: number;
  socketOptions?: Record<string, unknown>;
  /**
   * CURVE to the other broker: our broker identity and its CURVE public key (Z85). Its trust dir must hold
   * our .pub; a refusal surfaces as a SecurityError in health and is retried with a new socket.
   */
  curve?: { identity: Identity; serverKey: string };
}

/**
 * Forwards to another herald broker over its submit protocol. A batch counts as sent only when the
 * other broker acknowledged every message (stored in ITS outbox), so chains and fan-in lose nothing;
 * ids are kept, so the hub deduplicates resends.
 */
export class ForwardTransport implements Transport {
  readonly kind = "forward";
  readonly name: string;
  private readonly client: HeraldClient;
  private readonly state: TransportHealth = initialHealth();

  constructor(private readonly opts: ForwardOptions) {
    this.name = opts.name;
    this.client = new HeraldClient({
      endpoint: opts.endpoint,
      timeoutMs: opts.timeoutMs ?? 2500,
      retries: 0, // the dispatcher above retries with backoff; one try per send keeps status honest
      ...(opts.socketOptions ? { socketOptions: opts.socketOptions } : {}),
      ...(opts.curve ? { curve: opts.curve } : {}),
    });
  }

  async open(): Promise<void> {
    if (this.state.state === "closed") throw new ClosedError(`forward sink '${this.name}'`);
  }

  async send(batch: readonly Message[]): Promise<void> {
    if (this.state.state === "closed") throw new ClosedError(`forward sink '${this.name}'`);
    const out = batch.map((m) => ({ ...m, via: [...(m.via ?? []), this.opts.brokerName] }));
    let results: Awaited<ReturnType<HeraldClient["submit"]>>;
    try {
      results = await this.client.submit(out);
    } catch (err) {
      this.down(err);
      throw err;
    }
    const failed = results.find((r): r is HeraldError => r instanceof HeraldError && r.retryable);
    if (failed) {
      this.down(failed);
      throw failed;
    }
    for (const r of results) {
      // A permanent rejection (bad topic at the hub, policy): counted and logged in health, not retried forever.
      if (r instanceof HeraldError) {
        bump(this.state, "rejected");
        noteError(this.state, r);
      } else if (r.duplicate) bump(this.state, "duplicates");
    }
    this.state.state = "up";
    this.state.sent += batch.length;
  }

  private down(err: unknown): void {
    this.state.state = "down";
    noteError(this.state, err);
  }

  receive(): Subscription {
    throw rejected(
      "UNSUPPORTED",
      `forward sink '${this.name}' only sends; subscribe to the other broker's PUB socket`,
    );
  }

  health(): TransportHealth {
    return structuredClone(this.state);
  }

  async close(): Promise<void> {
    this.state.state = "closed";
    await this.client.close();
  }
}
