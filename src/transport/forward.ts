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
  /**
   * Why the sink holds its messages: logged once each time the reason changes, not on every retry, and
   * again every `remindMs` while a refusal holds it.
   */
  log?: Logger;
  /** How often a sink held by a refusal says so again (default 10 minutes). */
  remindMs?: number;
}

/** The other broker's limits, from its ping answer; an older broker does not say: herald's defaults. */
interface HubLimits {
  maxBodyBytes: number;
  maxBatch: number;
}

const DEFAULT_LIMITS: HubLimits = { maxBodyBytes: DEFAULT_MAX_BODY_BYTES, maxBatch: 1000 };

/**
 * Refusals about the message itself: the hub will never take it, so the dispatcher passes it over
 * (logged, counted in `skipped`). ID_CONFLICT (the hub holds another message with this id) never goes
 * away: held, one taken id would stop all forwarding. Every other refusal (UNKNOWN_KEY, UNSIGNED,
 * FORWARD_REFUSED, UNAUTHORIZED_TOPIC, BAD_REQUEST, unknown) may be cured at the hub (a key trusted, a
 * forwarder listed, the policy widened): the sink holds the message and retries.
 */
const MESSAGE_FAULTS: ReadonlySet<string> = new Set(["INVALID", "BAD_TOPIC", "TOO_LARGE", "ID_CONFLICT"]);

/**
 * Security refusals that no change at the hub cures, passed over like MESSAGE_FAULTS. The signer header is
 * a key id, so a key the hub has under another id is UNKNOWN_KEY (held: curable by trusting it);
 * BAD_SIGNATURE means the signature is incomplete, malformed or does not match the content, which stays
 * so. REVOKED_KEY: a revoked key is revoked for good, the publisher must sign with a new one. Held, one
 * such message stopped the sink for good and, through its cursor, filled this broker's outbox.
 */
const SIGNATURE_FAULTS: ReadonlySet<string> = new Set(["BAD_SIGNATURE", "REVOKED_KEY"]);
const PASSED_OVER: ReadonlySet<string> = new Set([...MESSAGE_FAULTS, ...SIGNATURE_FAULTS]);

const REMIND_MS = 10 * 60_000;
/** Ids the hub took while the page failed as a whole: more than a few pages' worth means they are stale. */
const TAKEN_KEPT = 10_000;

/** What holds the sink: the refused message (none for a hub that cannot be forwarded to) and since when. */
interface Hold {
  message: string;
  id: string | undefined;
  code: string;
  since: number;
  remindedAt: number;
}

type Outcome = Ack | HeraldError;

/** What an admin can do about a held message (the hub's refusal names its own fix). */
const cures = (sink: string): string =>
  "cure it at that broker as its refusal says (trust the signer's key, add this broker to security.forwarders, widen " +
  `security.policy), or drop this sink's backlog: remove sink '${sink}' from the configuration and ` +
  `restart with herald serve --forget-sink ${sink}`;

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
  /** The refusal holding the sink, for the reminder; undefined while it forwards. */
  private hold: Hold | undefined;
  /** The errors held() made: refusals that hold the sink until someone acts at the hub. */
  private readonly holds = new WeakSet<object>();
  /**
   * Ids of the page the hub stored while it refused another message of it. The dispatcher resends the
   * whole page until that one is taken; resent, they would be stored there again as new messages once
   * the hub's dedupWindow has passed, every dedupWindow for as long as the hold lasts.
   */
  private readonly taken = new Set<string>();
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
    const out = batch
      .filter((m) => !this.taken.has(m.id))
      .map((m) => ({ ...m, via: [...(m.via ?? []), this.opts.brokerName] }));
    try {
      if (out.length > 0) {
        await this.checkHub();
        this.settle(out, await this.client.submit(out));
      }
    } catch (err) {
      throw this.failed(err);
    }
    for (const m of batch) this.taken.delete(m.id);
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
   * retryable error that holds the sink. The hub judged each message alone and stored the others: they
   * are remembered, so that the resent page carries only what the hub has not taken.
   */
  private settle(sent: readonly Message[], results: readonly Outcome[]): void {
    const refused = results.find((r): r is HeraldError => r instanceof HeraldError);
    if (refused !== undefined) {
      if (this.taken.size > TAKEN_KEPT) this.taken.clear(); // at worst resent: the hub deduplicates
      results.forEach((r, i) => {
        if (!(r instanceof HeraldError) && sent[i] !== undefined) this.taken.add(sent[i].id);
      });
      throw this.messageFault(refused) ?? this.held(refused);
    }
    for (const r of results) if ((r as Ack).duplicate) bump(this.state, "duplicates");
  }

  /** The refusal as the MessageRejectedError the dispatcher passes a message over for, if it is one. */
  private messageFault(err: HeraldError): MessageRejectedError | undefined {
    if (err instanceof MessageRejectedError && MESSAGE_FAULTS.has(err.code)) return err;
    if (!(err instanceof SecurityError) || !SIGNATURE_FAULTS.has(err.code)) return undefined;
    return new MessageRejectedError(
      err.code,
      `the broker at ${this.opts.endpoint} refused message ${String(err.details["id"])}: ${err.message}; ` +
        `no change at that broker makes it take this message: forward sink '${this.name}' passes it over`,
      { cause: err, details: { ...err.details, sink: this.name } },
    );
  }

  /**
   * A refusal the hub may stop making (a key trusted there, a forwarder listed): retried, never lost. A
   * hub that is only busy (OUTBOX_FULL, SHUTTING_DOWN) says so retryably and needs no one: left as it is.
   */
  private held(err: HeraldError): HeraldError {
    if (err.retryable && !(err instanceof SecurityError)) return err;
    const id = err.details["id"];
    const Cls = err instanceof SecurityError ? SecurityError : TransportError;
    const held = new Cls(
      err.code,
      `the broker at ${this.opts.endpoint} refused message ${String(id)}: ${err.message}; ` +
        `forward sink '${this.name}' holds it and retries until that broker takes it, and this broker's ` +
        `outbox keeps every message after it meanwhile: ${cures(this.name)}`,
      { cause: err, retryable: true, details: { ...err.details, sink: this.name } },
    );
    this.holds.add(held);
    return held;
  }

  private up(count: number): void {
    if (this.closed) return;
    if (this.reported !== undefined)
      this.log.info("forward sink is forwarding again", { sink: this.name, endpoint: this.opts.endpoint });
    this.reported = undefined;
    this.hold = undefined;
    this.state.state = "up";
    this.state.sent += count;
  }

  /** What send throws for `err`; a failure of the connection or of the hub also marks the sink down. */
  private failed(err: unknown): unknown {
    if (this.closed) return err instanceof ClosedError ? err : new ClosedError(`forward sink '${this.name}'`);
    noteError(this.state, err);
    if (err instanceof MessageRejectedError && PASSED_OVER.has(err.code)) {
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
    const holding =
      err instanceof ConfigError || err instanceof SecurityError || this.holds.has(err as object);
    // A hub unreachable for a while in between does not end a hold: only a send the hub takes does.
    if (holding && err instanceof HeraldError) this.remind(err, message);
    if (message === this.reported) return;
    this.reported = message;
    const fields = { sink: this.name, endpoint: this.opts.endpoint, err: message };
    if (holding) this.log.error("forward sink holds its messages", fields);
    else this.log.warn("forward sink cannot reach the other broker; retrying", fields);
  }

  /**
   * Note what holds the sink and, every `remindMs` while the same refusal holds it, log it again with
   * what it costs: said once, a hold is easily missed until this broker refuses its own publishers.
   */
  private remind(err: HeraldError, message: string): void {
    const now = Date.now();
    const id = typeof err.details["id"] === "string" ? err.details["id"] : undefined;
    if (this.hold?.message !== message) {
      this.hold = { message, id, code: err.code, since: now, remindedAt: now };
      return;
    }
    if (now - this.hold.remindedAt < (this.opts.remindMs ?? REMIND_MS)) return;
    this.hold.remindedAt = now;
    // The error names the cure: the hub's fix for a held message, a unique broker.name for the hub's name.
    this.log.error(
      "forward sink still holds its messages: this broker's outbox fills behind the held one, and once " +
        "outbox.maxMessages are pending it refuses every submission (OUTBOX_FULL)",
      {
        sink: this.name,
        endpoint: this.opts.endpoint,
        id: this.hold.id ?? null,
        code: this.hold.code,
        heldSince: new Date(this.hold.since).toISOString(),
        err: message,
      },
    );
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
