import { type Ack, HeraldClient } from "../client/publisher.js";
import {
  ClosedError,
  ConfigError,
  HeraldError,
  MessageRejectedError,
  rejected,
  SecurityError,
  TransportError,
} from "../errors.js";
import type { Identity } from "../security/keys.js";
import { type Logger, silentLogger } from "../util/log.js";
import { DEFAULT_MAX_BODY_BYTES, type Message } from "../wire/message.js";
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
  /** Why the sink holds its messages: logged once each time the reason changes, not on every retry. */
  log?: Logger;
}

/** The other broker's limits, from its ping answer; an older broker does not say: herald's defaults. */
interface HubLimits {
  maxBodyBytes: number;
  maxBatch: number;
}

const DEFAULT_LIMITS: HubLimits = { maxBodyBytes: DEFAULT_MAX_BODY_BYTES, maxBatch: 1000 };

/**
 * Refusals about the message itself: the hub will never take it, so the dispatcher passes it over
 * (logged, counted in `skipped`). Every other refusal (security, BAD_REQUEST, unknown) may be cured at the
 * hub (a key trusted, a forwarder listed): the sink holds the message and retries. ID_CONFLICT (the hub
 * holds another message with this id) never goes away: held, one taken id would stop all forwarding.
 */
const MESSAGE_FAULTS: ReadonlySet<string> = new Set(["INVALID", "BAD_TOPIC", "TOO_LARGE", "ID_CONFLICT"]);

type Outcome = Ack | HeraldError;

/**
 * Forwards to another herald broker over its submit protocol. A batch counts as sent only when the
 * other broker acknowledged every message (stored in ITS outbox), so chains and fan-in lose nothing;
 * ids are kept, so the hub deduplicates resends.
 *
 * Before the first send on each connection (at start and after any failure) the sink pings the hub: a
 * hub with our own broker.name would answer every message "duplicate" (its loop stop) and store none,
 * so the sink refuses to forward there; and it sizes its requests to the hub's limits, because a request
 * over the hub's socket limit is dropped without a reply (a TIMEOUT that retrying never cures).
 */
export class ForwardTransport implements Transport {
  readonly kind = "forward";
  readonly name: string;
  private client: HeraldClient;
  private limits: HubLimits = DEFAULT_LIMITS;
  /** The hub was checked (name, limits) on this connection; cleared by every failure. */
  private checked: Promise<void> | undefined;
  private closed = false;
  /** The problem last logged: a sink held for one reason says so once, not on every retry. */
  private reported: string | undefined;
  private readonly state: TransportHealth = initialHealth();
  private readonly log: Logger;

  constructor(private readonly opts: ForwardOptions) {
    this.name = opts.name;
    this.log = opts.log ?? silentLogger;
    this.client = this.newClient(DEFAULT_LIMITS);
  }

  async open(): Promise<void> {
    // No ping here: the hub may be down while this broker starts; send() checks it before forwarding.
    if (this.closed) throw new ClosedError(`forward sink '${this.name}'`);
  }

  async send(batch: readonly Message[]): Promise<void> {
    if (this.closed) throw new ClosedError(`forward sink '${this.name}'`);
    const out = batch.map((m) => ({ ...m, via: [...(m.via ?? []), this.opts.brokerName] }));
    try {
      await this.checkHub();
      this.settle(await this.client.submit(out));
    } catch (err) {
      throw this.failed(err);
    }
    this.up(batch.length);
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
    this.closed = true;
    this.state.state = "closed";
    await this.client.close();
  }

  private newClient(limits: HubLimits): HeraldClient {
    return new HeraldClient({
      endpoint: this.opts.endpoint,
      timeoutMs: this.opts.timeoutMs ?? 2500,
      retries: 0, // the dispatcher above retries with backoff; one try per send keeps status honest
      maxBodyBytes: limits.maxBodyBytes,
      maxBatch: limits.maxBatch,
      ...(this.opts.socketOptions ? { socketOptions: this.opts.socketOptions } : {}),
      ...(this.opts.curve ? { curve: this.opts.curve } : {}),
    });
  }

  /** Once per connection; concurrent sends share the one ping. */
  private checkHub(): Promise<void> {
    this.checked ??= this.ping();
    return this.checked;
  }

  private async ping(): Promise<void> {
    const answer = await this.client.command("ping", { limits: true });
    const hub = typeof answer === "object" && answer !== null ? (answer as Record<string, unknown>) : {};
    if (hub["broker"] === this.opts.brokerName) throw this.sameName();
    this.useLimits(hubLimits(hub["limits"]));
  }

  /** A client sized to the hub: a message the hub can never read is then refused TOO_LARGE here. */
  private useLimits(limits: HubLimits): void {
    if (limits.maxBodyBytes === this.limits.maxBodyBytes && limits.maxBatch === this.limits.maxBatch) return;
    const old = this.client;
    this.limits = limits;
    this.client = this.newClient(limits);
    void old.close(); // only the ping used it: sends wait for the check
  }

  private sameName(): ConfigError {
    const name = this.opts.brokerName;
    return new ConfigError(
      "CONFIG",
      `broker.name ${name} is the same on both brokers: give each a unique broker.name ` +
        `(forward sink '${this.name}' reached a broker named ${name} at ${this.opts.endpoint}; it would drop ` +
        "every message as a forwarding loop). If that endpoint is this broker's own submit socket, point " +
        "the sink at the other broker. The sink holds its messages and retries: nothing is lost",
      { retryable: true, details: { brokerName: name, endpoint: this.opts.endpoint, sink: this.name } },
    );
  }

  /**
   * Throws for the first refused message, in order: a fault of the message itself as MessageRejectedError
   * (the dispatcher resends the page one message at a time and passes that one over), anything else as a
   * retryable error that holds the sink. Messages acknowledged with it are resent: the hub deduplicates.
   */
  private settle(results: readonly Outcome[]): void {
    const refused = results.find((r): r is HeraldError => r instanceof HeraldError);
    if (refused !== undefined) {
      const fault = refused instanceof MessageRejectedError && MESSAGE_FAULTS.has(refused.code);
      throw fault ? refused : this.held(refused);
    }
    for (const r of results) if ((r as Ack).duplicate) bump(this.state, "duplicates");
  }

  /** A refusal the hub may stop making (a key trusted there, a forwarder listed): retried, never lost. */
  private held(err: HeraldError): HeraldError {
    if (err.retryable) return err;
    const id = err.details["id"];
    const Cls = err instanceof SecurityError ? SecurityError : TransportError;
    return new Cls(
      err.code,
      `the broker at ${this.opts.endpoint} refused message ${String(id)}: ${err.message}; ` +
        `forward sink '${this.name}' holds it (and those after it) and retries until it is taken`,
      { cause: err, retryable: true, details: { ...err.details, sink: this.name } },
    );
  }

  private up(count: number): void {
    if (this.closed) return;
    if (this.reported !== undefined)
      this.log.info("forward sink is forwarding again", { sink: this.name, endpoint: this.opts.endpoint });
    this.reported = undefined;
    this.state.state = "up";
    this.state.sent += count;
  }

  /** What send throws for `err`; a failure of the connection or of the hub also marks the sink down. */
  private failed(err: unknown): unknown {
    if (this.closed) return err instanceof ClosedError ? err : new ClosedError(`forward sink '${this.name}'`);
    noteError(this.state, err);
    if (err instanceof MessageRejectedError && MESSAGE_FAULTS.has(err.code)) {
      bump(this.state, "rejected"); // the hub is fine; the dispatcher logs and passes the message over
      return err;
    }
    this.checked = undefined; // ping again first: the hub may have restarted with another name or limits
    this.state.state = "down";
    this.report(err);
    return err;
  }

  private report(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (message === this.reported) return;
    this.reported = message;
    const fields = { sink: this.name, endpoint: this.opts.endpoint, err: message };
    if (err instanceof ConfigError || err instanceof SecurityError)
      this.log.error("forward sink holds its messages", fields);
    else this.log.warn("forward sink cannot reach the other broker; retrying", fields);
  }
}

/** The limits in a ping answer, when the hub sent them and they make sense. */
function hubLimits(raw: unknown): HubLimits {
  const given = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
  const positive = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;
  return {
    maxBodyBytes: positive(given["maxBodyBytes"]) ? given["maxBodyBytes"] : DEFAULT_LIMITS.maxBodyBytes,
    maxBatch: positive(given["maxBatch"]) ? given["maxBatch"] : DEFAULT_LIMITS.maxBatch,
  };
}
