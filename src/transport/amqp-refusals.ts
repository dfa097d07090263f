import { TransportError } from "../errors.js";
import { type Logger, type RateLimitOptions, rateLimitedLogger } from "../util/log.js";
import { type AmqpLogger, type ResolvedAmqpOptions, redactUrl } from "./amqp-options.js";

/** The AMQP reply code a server-closed channel carried (amqplib puts it on the error as `code`). */
export function replyCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
}

/**
 * A channel setup the server refused over the exchange itself: 404 (checkExchange, it does not exist),
 * 406 (assertExchange, it exists with another type or durability), 403 (no permission on it).
 * Retrying the same setup cannot fix these; anything else (a connection going away) is worth retrying.
 */
export function isExchangeRefusal(err: unknown): boolean {
  const code = replyCode(err);
  return code === 403 || code === 404 || code === 406;
}

/** The non-retryable TRANSPORT error `open()` and waiting sends fail with; it names the fix. */
export function exchangeUnusable(o: ResolvedAmqpOptions, err: unknown): TransportError {
  const why = err instanceof Error ? err.message : String(err);
  let fix: string;
  if (replyCode(err) === 403)
    fix = `the user may not ${o.declareExchange ? "declare (configure permission)" : "access"} it: grant the permission with rabbitmqctl set_permissions${o.declareExchange ? " or set declareExchange: false" : ""}`;
  else if (o.declareExchange)
    fix =
      "the exchange exists with other settings (type, durability): fix exchangeType or use another exchange";
  else
    fix = "declareExchange is false and the exchange does not exist: create it or set declareExchange: true";
  return new TransportError(
    "TRANSPORT",
    `AMQP '${o.name}' at ${redactUrl(o.url)} cannot use exchange '${o.exchange}': ${why}; ${fix}`,
    { cause: err },
  );
}

/**
 * The server closed the channel with 403 over a publish: an internal exchange, or a user without write
 * permission (or topic permission for the routing key). Not retryable: the sends concerned fail so that
 * the caller backs off instead of herald reopening the channel and publishing into the refusal forever.
 */
export function publishForbidden(o: ResolvedAmqpOptions, reason: string): TransportError {
  const fix = /internal exchange/i.test(reason)
    ? `'${o.exchange}' is an internal exchange, which takes no publishes: configure another exchange`
    : `grant the user write permission on exchange '${o.exchange}' (rabbitmqctl set_permissions) and, if topic permissions are set, on these routing keys (set_topic_permissions)`;
  return new TransportError(
    "TRANSPORT",
    `AMQP '${o.name}' at ${redactUrl(o.url)}: RabbitMQ refused publishing to exchange '${o.exchange}': ${reason}; ${fix}`,
  );
}

/**
 * Whether the publisher can use its exchange, kept as state rather than a one-shot promise: the exchange
 * can be created or fixed while herald keeps retrying, and the setup that then succeeds must undo the
 * earlier refusal for open() and send().
 */
export class ExchangeGate {
  /** Why the latest channel setup could not use the exchange; cleared by one that succeeds. */
  error: TransportError | undefined;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  /** Rejects at once with the standing refusal; otherwise waits for the next outcome. */
  wait(): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** A channel setup succeeded. */
  ready(): void {
    this.error = undefined;
    this.wake(undefined);
  }

  /** The connection was lost: open() resolves (state "down") and herald retries in the background. */
  release(): void {
    this.wake(undefined);
  }

  refuse(err: TransportError): void {
    this.error = err;
    this.wake(err);
  }

  close(err: unknown): void {
    this.wake(err);
  }

  private wake(err: unknown): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      if (err === undefined) w.resolve();
      else w.reject(err);
    }
  }
}

/**
 * Unroutable returns are logged up to `burst` per window, the rest counted into the next line: an exchange
 * with no queue bound (deleted and re-declared by the sink, or a binding removed) returns every message,
 * and one warning each would flood the log at the publish rate. The `returned` counter and `lastError`
 * still see every one.
 */
export function unroutableNotices(
  log: AmqpLogger,
  opts: { burst?: number; intervalMs?: number; now?: () => number } = {},
): (why: string) => void {
  const burst = opts.burst ?? 5;
  const interval = opts.intervalMs ?? 60_000;
  const now = opts.now ?? Date.now;
  let start = Number.NEGATIVE_INFINITY;
  let passed = 0;
  let held = 0;
  return (why) => {
    const t = now();
    if (t - start >= interval) {
      start = t;
      passed = 0;
    }
    if (passed >= burst) {
      held++;
      return;
    }
    passed++;
    log("warn", held > 0 ? `${why} (and ${held} more returned since the last such line)` : why);
    held = 0;
  };
}

/**
 * An AmqpLogger through util/log.ts's rateLimitedLogger (lines over the burst are counted into the next
 * one that passes, as `suppressed=N`): for lines a peer can cause at its own rate.
 */
export function rateLimitedAmqpLog(log: AmqpLogger, opts: RateLimitOptions): AmqpLogger {
  const inner: Logger = {
    debug: (m, f) => log("debug", m, f),
    info: (m, f) => log("info", m, f),
    warn: (m, f) => log("warn", m, f),
    error: (m, f) => log("error", m, f),
    child: () => inner,
  };
  const limited = rateLimitedLogger(inner, opts);
  return (level, message, fields) => limited[level](message, fields);
}
