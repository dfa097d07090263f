import type { Submitter } from "../broker/local-submit.js";
import { HeraldError } from "../errors.js";
import type { Identity } from "../security/keys.js";
import { vouchIngested } from "../security/sign.js";
import type { Subscription } from "../transport/types.js";
import { ZmqSubscribeTransport } from "../transport/zeromq-sub.js";
import { backoffDelay, sleep } from "../util/backoff.js";
import { type Logger, rateLimitedLogger, refusalLogger } from "../util/log.js";
import type { Message } from "../wire/message.js";
import {
  IngestQueue,
  type IngestQueueState,
  MAX_BATCH_BYTES,
  MAX_QUEUED_BYTES,
  type Pending,
} from "./ingest-queue.js";
import { READ_YIELD_BYTES, RelayInbound, type TopicScheme } from "./relay.js";
import { localHostsFor } from "./services.js";

/** Header naming the service (or `relay_inbound`) a legacy message was ingested from. */
export const INGESTED_FROM = "herald.ingested-from";
export const INGESTED_BY = "herald.ingested-by";
export const VOUCHED = "herald.vouched";
/** Pseudo service name for messages from active publishers (fedmsg-logger, scripts) via relay_inbound. */
export const RELAY_INBOUND = "relay_inbound";

export interface IngestCounters {
  ingested: number;
  duplicates: number;
  malformed: number;
  rejected: number;
  dropped: number;
  /** relay_inbound only: publishers' connections ended (a script finished, or a frame over the limit). */
  disconnects?: number;
  /** Date.now() of the last message read from this service's endpoints. */
  lastSeenAt?: number;
}

export interface IngestOptions {
  /** The broker's LocalSubmitter inside `herald serve`; a HeraldClient in `herald shim`. */
  submitter: Submitter;
  brokerName: string;
  log: Logger;
  maxBatch?: number;
  /** Envelope bytes of one submit (at least one message). Default MAX_BATCH_BYTES. */
  maxBatchBytes?: number;
  /** Messages waiting for the broker before new ones are dropped (and counted). Default 100,000. */
  maxQueued?: number;
  /** Envelope bytes waiting for the broker before new ones are dropped (and counted). Default MAX_QUEUED_BYTES. */
  maxQueuedBytes?: number;
  /**
   * Largest envelope frame ingested, and libzmq's cap on the sockets: a larger one ends its connection on a
   * service's port (counted as malformed, reconnected), see LEGACY_RECEIVE_HWM.
   */
  maxMessageBytes?: number;
  /** Hosts meaning "this machine", for relay_inbound. Default: this host's names, `brokerName`, loopback. */
  localHosts?: readonly string[];
  /**
   * The shim's own identity: every ingested message is signed by it (vouched, not signed by the legacy
   * publisher), so brokers and subscribers that require signatures accept it as the shim's word.
   */
  identity?: Identity;
}

const MAX_BODY = 4 * 1024 * 1024;

/**
 * libzmq's limits on the SUB sockets the shim connects to services' ports (`legacy`, and `bridged` until
 * the shim holds the port), with the envelope limit L as ZMQ_MAXMSGSIZE (checked per frame, before the
 * frame is read; the old cap of 32 x L held up to 32 x L per frame):
 * - ZMQ_RCVHWM counts whole messages per connection, not bytes (libzmq has no byte bound). It stays at
 *   10,000, the transport's default: a publisher's burst of small messages must fit while the broker
 *   commits (measured: a fedmsg PUB sending 20,000 flat out lost 3-4 at 64 and at 1,000, none at 10,000).
 *   The price: a flood of envelopes near L fills it (300 of 3 MiB held ~1 GB); these are known publishers
 *   the shim connects to, not anonymous ones (relay_inbound keeps 4).
 * - The reader yields to the event loop every READ_YIELD_BYTES read (relay.ts) (received Buffers are freed only from
 *   there), so small messages are still taken many to a turn and batched into one commit.
 * - What the reader took waits in the ingest queue, bounded in bytes (ingest-queue.ts): past it, counted drops.
 * The trade-off of the cap: an envelope over L ends the connection (libzmq never reads it), which the
 * transport rebuilds after about a second; what the publisher had queued for it and sent meanwhile is lost
 * to herald (old subscribers still get it). Such an envelope is one herald could not take anyway.
 */
export const LEGACY_RECEIVE_HWM = 10_000;
const LEGACY_DELIVERY_BUFFER = 1000;

/**
 * A broker that has not started yet answers NO_BROKER: expected while `herald serve` starts (the shim reads
 * legacy publishers before its broker is up), or while a standalone shim waits for its broker. Logged at
 * debug until the broker first answers or for this long, whichever comes first; at warn after.
 */
const STARTUP_QUIET_MS = 30_000;

/**
 * Reads legacy publishers (fedmsg PUB sockets that apps bind, and a bound SUB for active publishers) and
 * submits what they send to the broker, batching whatever arrived while the previous submit was in flight.
 * Ids are fedmsg's msg_id, so the broker's dedup drops a message read twice (two paths, a retry).
 */
export class Ingest {
  private readonly readers = new Map<
    string,
    { service: string; sub: Subscription; t: ZmqSubscribeTransport }
  >();
  private readonly stats = new Map<string, IngestCounters>();
  private readonly queue: IngestQueue;
  /** Messages at the queue's head being submitted now. */
  private inFlight = 0;
  private readonly startedAt = Date.now();
  /** The broker answered a submit once: NO_BROKER after that is news (see STARTUP_QUIET_MS). */
  private brokerAnswered = false;
  private flushing: Promise<void> | undefined;
  private readonly relay: RelayInbound;
  /** Refusals logged up to a rate per code: an anonymous relay_inbound peer must not flood the log. */
  private readonly refusalLog: Logger;
  /** Malformed messages from services' ports, up to a rate per service (all of them are counted). */
  private readonly malformedLog: Logger;
  /** "queue full" at most once a minute per service, with the drops since (`suppressed=N`). */
  private readonly dropLog: Logger;
  private closed = false;
  private readonly abort = new AbortController();
  /** Aborts the current retry backoff (close() submits what is left at once). */
  private backoff = new AbortController();

  constructor(private readonly opts: IngestOptions) {
    this.queue = new IngestQueue({
      maxMessages: opts.maxQueued ?? 100_000,
      maxBytes: opts.maxQueuedBytes ?? MAX_QUEUED_BYTES,
      batchMessages: opts.maxBatch ?? 1000,
      batchBytes: opts.maxBatchBytes ?? MAX_BATCH_BYTES,
    });
    this.refusalLog = refusalLogger(opts.log);
    const perService = (msg: string, f?: Record<string, unknown>): string =>
      `${msg} ${String(f?.["service"])}`;
    this.malformedLog = rateLimitedLogger(opts.log, { burst: 20, key: perService });
    this.dropLog = rateLimitedLogger(opts.log, { burst: 1, key: perService });
    this.relay = new RelayInbound({
      log: opts.log,
      maxMessageBytes: this.maxBytes(),
      localHosts: opts.localHosts ?? localHostsFor(opts.brokerName),
      onMessage: (m, bytes) => this.enqueue(RELAY_INBOUND, m, bytes),
      onMalformed: () => {
        this.counters(RELAY_INBOUND).malformed++;
      },
      onDisconnect: () => {
        const c = this.counters(RELAY_INBOUND);
        c.disconnects = (c.disconnects ?? 0) + 1;
      },
      closed: this.abort.signal,
    });
  }

  private maxBytes(): number {
    return this.opts.maxMessageBytes ?? MAX_BODY;
  }

  /** Services' endpoints currently read (endpoint -> service). */
  endpoints(): Map<string, string> {
    return new Map([...this.readers].map(([ep, r]) => [ep, r.service]));
  }

  counters(service: string): IngestCounters {
    let c = this.stats.get(service);
    if (!c) {
      c = { ingested: 0, duplicates: 0, malformed: 0, rejected: 0, dropped: 0 };
      this.stats.set(service, c);
    }
    return c;
  }

  /** Seed `lastSeenAt` from a previous run's evidence so "recent activity" survives restarts. */
  seedLastSeen(service: string, at: number): void {
    const c = this.counters(service);
    if (c.lastSeenAt === undefined || c.lastSeenAt < at) c.lastSeenAt = at;
  }

  /** Start reading one endpoint of a service (idempotent). */
  read(service: string, endpoint: string, defaults: { host?: string; app?: string }): void {
    if (this.closed || this.readers.has(endpoint)) return;
    const t = new ZmqSubscribeTransport({
      name: `shim-${service}`,
      endpoints: [endpoint],
      format: "legacy",
      legacyDefaults: () => defaults,
      // Also libzmq's own cap, per frame: an envelope over it ends the connection (see LEGACY_RECEIVE_HWM).
      maxMessageBytes: this.maxBytes(),
      receiveHighWaterMark: LEGACY_RECEIVE_HWM,
      bufferSize: LEGACY_DELIVERY_BUFFER,
      yieldEveryBytes: READ_YIELD_BYTES,
      logger: {
        // Malformed messages, and connections dropped for an envelope over the cap: one count each.
        warn: (msg, f) => {
          this.counters(service).malformed++;
          this.malformedLog.warn(msg, { service, ...f });
        },
        debug: () => {},
      },
    });
    const sub = t.receive({ patterns: ["#"] });
    this.readers.set(endpoint, { service, sub, t });
    void this.pump(service, sub);
    this.opts.log.info("ingesting legacy endpoint", { service, endpoint });
  }

  /** Stop reading one endpoint; what was already read is still submitted. */
  async unread(endpoint: string): Promise<void> {
    const r = this.readers.get(endpoint);
    if (!r) return;
    this.readers.delete(endpoint);
    await r.sub.close();
    await r.t.close();
    this.opts.log.info("stopped ingesting legacy endpoint", { service: r.service, endpoint });
  }

  private async pump(service: string, sub: Subscription): Promise<void> {
    try {
      for await (const d of sub)
        this.enqueue(service, d.message, d.raw?.length ?? JSON.stringify(d.message.body).length);
    } catch (err) {
      if (!this.closed) this.opts.log.error("legacy endpoint reader stopped", { service, err: String(err) });
    }
  }

  /**
   * Bind relay_inbound (a SUB socket) for active publishers; retries while another process holds it.
   * Idempotent; `scheme` (the plan's topic prefix and environment) names the app of what arrives there.
   */
  async bindRelay(endpoint: string, scheme?: TopicScheme): Promise<void> {
    if (!this.closed) await this.relay.bind(endpoint, scheme);
  }

  /** Unbind relay_inbound, or cancel the bind still retrying. */
  async unbindRelay(): Promise<void> {
    this.relay.unbind();
  }

  /** The relay_inbound endpoint bound now (not while its bind is still retrying). */
  get relayEndpoint(): string | undefined {
    return this.relay.boundEndpoint;
  }

  /** What waits for the broker now (tests, status). */
  queueState(): IngestQueueState {
    return this.queue.state();
  }

  private enqueue(service: string, message: Message, bytes: number): void {
    const c = this.counters(service);
    c.lastSeenAt = Date.now();
    if (this.queue.full(bytes)) {
      c.dropped++;
      this.dropLog.warn(
        "ingest queue full (broker unreachable or far behind?): dropping legacy messages, counted as dropped",
        { service, dropped: c.dropped, queued: this.queue.length, queuedBytes: this.queue.queuedBytes },
      );
      return;
    }
    const headers = {
      ...message.headers,
      [VOUCHED]: "legacy",
      [INGESTED_BY]: this.opts.brokerName,
      [INGESTED_FROM]: service,
    };
    const vouched = { ...message, headers };
    let signed: Message;
    try {
      signed = this.opts.identity ? vouchIngested(vouched, this.opts.identity) : vouched;
    } catch (err) {
      // Decodable but not signable (a number JSON cannot hold, nesting past 256): the broker could not
      // store it either. One bad message must not end the endpoint's reader.
      c.malformed++;
      this.opts.log.warn("legacy message cannot be signed; skipped", {
        service,
        id: message.id,
        err: String(err),
      });
      return;
    }
    this.queue.push([{ service, message: signed, bytes }]);
    this.flushing ??= this.flush().finally(() => {
      this.flushing = undefined;
    });
  }

  /**
   * Group commit: submit whatever is queued, in order. A failed request, and messages the broker could
   * not take now (outbox full, shutting down: retryable), are retried with the same ids after a backoff;
   * only what it refuses for good is dropped (counted as rejected, logged).
   */
  private async flush(): Promise<void> {
    let attempt = 0;
    while (this.queue.length > 0 && !this.closed) {
      const batch = this.queue.head();
      let failure: unknown;
      try {
        this.inFlight = batch.length;
        const results = await this.opts.submitter.submit(batch.map((p) => p.message)).finally(() => {
          this.inFlight = 0;
        });
        this.brokerAnswered = true;
        this.queue.remove(0, batch.length);
        const later: Pending[] = [];
        batch.forEach((p, k) => {
          const r = results[k];
          if (r === undefined || (r instanceof HeraldError && r.retryable)) {
            later.push(p);
            failure ??= r ?? "the broker answered fewer results than messages";
          } else this.account(p, r);
        });
        if (later.length === 0) {
          attempt = 0;
          continue;
        }
        if (this.closed) return this.lose(later);
        this.queue.push(later, true);
      } catch (err) {
        if (this.closed) return this.lose(this.queue.remove(0));
        failure = err;
      }
      if (attempt % 5 === 0) this.sayRetry(failure);
      this.backoff = new AbortController();
      await sleep(
        backoffDelay(attempt++, 100, 5000),
        AbortSignal.any([this.abort.signal, this.backoff.signal]),
      );
    }
  }

  /** NO_BROKER while the broker starts is expected: debug then (see STARTUP_QUIET_MS), warn otherwise. */
  private sayRetry(failure: unknown): void {
    const starting =
      failure instanceof HeraldError &&
      failure.code === "NO_BROKER" &&
      !this.brokerAnswered &&
      Date.now() - this.startedAt < STARTUP_QUIET_MS;
    this.opts.log[starting ? "debug" : "warn"](
      "cannot submit ingested legacy messages yet; retrying with the same ids",
      {
        err: failure instanceof Error ? failure.message : String(failure),
        queued: this.queue.length,
        queuedBytes: this.queue.queuedBytes,
      },
    );
  }

  private account(p: Pending, r: { duplicate: boolean } | HeraldError): void {
    const c = this.counters(p.service);
    if (r instanceof HeraldError) {
      c.rejected++;
      this.refusalLog.warn("broker refused an ingested legacy message", {
        service: p.service,
        id: p.message.id,
        topic: p.message.topic,
        code: r.code,
        reason: r.message,
      });
    } else if (r.duplicate) c.duplicates++;
    else c.ingested++;
  }

  /** Wait (bounded) until everything read so far was submitted. */
  async drain(deadline: number): Promise<void> {
    while ((this.queue.length > 0 || this.flushing) && Date.now() < deadline) await sleep(10);
  }

  /**
   * Stop reading, then submit what was read (a retry waiting out its backoff goes at once), for at most
   * 2 s. What is still queued then is lost: counted in `dropped` per service and logged.
   */
  async close(): Promise<void> {
    await Promise.all([...this.readers.keys()].map((ep) => this.unread(ep)));
    await this.unbindRelay();
    this.backoff.abort();
    await this.drain(Date.now() + 2000);
    this.closed = true;
    this.abort.abort();
    // A submit still in flight settles its own batch (flush), the rest is lost now.
    this.lose(this.queue.remove(this.inFlight));
  }

  private lose(left: Pending[]): void {
    if (left.length === 0) return;
    for (const p of left) this.counters(p.service).dropped++;
    this.opts.log.error("stopped with ingested legacy messages the broker had not taken: lost", {
      count: left.length,
      services: [...new Set(left.map((p) => p.service))],
    });
  }
}
