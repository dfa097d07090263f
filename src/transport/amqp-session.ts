import type { ChannelModel, SocketOptions } from "amqplib";
import { TransportError } from "../errors.js";
import { coalesceWrites } from "./amqp-cork.js";
import { amqplib as amqp, warnIfUnguarded } from "./amqp-lib.js";
import { backoffDelay, buildConnectArgs, type ResolvedAmqpOptions, redactUrl } from "./amqp-options.js";
import { bump, noteError, type TransportHealth } from "./types.js";

/** Reactions of the publisher and the consumers to connection changes. */
export interface SessionListener {
  up?(model: ChannelModel): void;
  down?(): void;
  blocked?(reason: string): void;
  unblocked?(): void;
}

/** A connection up at least this long (or reconnectMaxDelay, if longer) counts as working again. */
const STABLE_AFTER_MS = 1_000;
/** How often a reconnect failing the same way is logged again. */
const FAILURE_REMINDER_MS = 60_000;

/**
 * One AMQP connection with our own recovery: amqplib 2 restores connections only when asked and never
 * restores channels, so herald reconnects itself (capped exponential backoff with jitter) and tells
 * the publisher and consumers to rebuild their channels and topology.
 */
export class AmqpSession {
  model: ChannelModel | undefined;
  blockedReason: string | undefined;
  private readonly listeners = new Set<SessionListener>();
  private closed = false;
  private attempts = 0;
  /** When the current connection came up (Date.now()). */
  private upSince = 0;
  private lastFailure: { reason: string; at: number } | undefined;
  private everConnected = false;
  private timer: NodeJS.Timeout | undefined;
  private connecting: Promise<void> | undefined;
  /** Destroys the socket of the connect in progress: close() must not leave it holding the process. */
  private connectAbort: AbortController | undefined;

  constructor(
    private readonly o: ResolvedAmqpOptions,
    private readonly health: TransportHealth,
  ) {}

  listen(l: SessionListener): () => void {
    this.listeners.add(l);
    if (this.model) l.up?.(this.model);
    return () => this.listeners.delete(l);
  }

  get isUp(): boolean {
    return this.model !== undefined;
  }

  /**
   * First connection attempt. Unreachable brokers are not an error (we keep retrying in the
   * background, health says "down"); refused credentials or a missing vhost are, since retrying
   * cannot fix configuration.
   */
  async start(): Promise<void> {
    if (this.model || this.connecting) return this.connecting;
    warnIfUnguarded(this.o.log);
    try {
      await this.attempt();
    } catch (err) {
      if (isConfigProblem(err))
        throw new TransportError(
          "TRANSPORT",
          `AMQP '${this.o.name}' at ${redactUrl(this.o.url)} refused the connection: ${(err as Error).message}; check the user, password and vhost in the url`,
          { cause: err },
        );
      this.scheduleReconnect(err);
    }
  }

  private attempt(): Promise<void> {
    const abort = new AbortController();
    this.connectAbort = abort;
    this.connecting = (async () => {
      const { url, socketOptions } = buildConnectArgs(this.o);
      // amqplib hands the options to net/tls.connect, whose socket is destroyed when `signal` aborts.
      const model = await amqp.connect(url, { ...socketOptions, signal: abort.signal } as SocketOptions);
      if (this.closed) {
        await model.close().catch(() => {});
        return;
      }
      this.attach(model);
      this.model = model;
      this.upSince = Date.now();
      if (this.everConnected) bump(this.health, "reconnects");
      this.everConnected = true;
      this.lastFailure = undefined;
      this.health.state = "up";
      this.o.log("info", "connected", { url: redactUrl(this.o.url) });
      for (const l of this.listeners) l.up?.(model);
    })().finally(() => {
      this.connecting = undefined;
      this.connectAbort = undefined;
    });
    return this.connecting;
  }

  private attach(model: ChannelModel): void {
    coalesceWrites(model);
    // Without an 'error' listener a connection error would be thrown as an uncaught exception.
    model.on("error", (err: Error) => {
      noteError(this.health, err);
      this.o.log("warn", `connection error: ${err.message}`);
    });
    model.on("handler-error", (err: Error, event: string) => {
      noteError(this.health, err);
      this.o.log("error", `listener for '${event}' threw: ${err.message}`);
    });
    model.on("close", (err?: Error) => this.lost(model, err));
    model.on("blocked", (reason: string) => {
      this.blockedReason = reason;
      this.health.state = "blocked";
      bump(this.health, "blocked");
      noteError(this.health, `broker blocked publishing: ${reason}`);
      this.o.log("warn", `broker blocked the connection: ${reason}`);
      for (const l of this.listeners) l.blocked?.(reason);
    });
    model.on("unblocked", () => {
      this.blockedReason = undefined;
      if (this.model === model) this.health.state = "up";
      this.o.log("info", "broker unblocked the connection");
      for (const l of this.listeners) l.unblocked?.();
    });
  }

  private lost(model: ChannelModel, err?: Error): void {
    if (this.model !== model) return;
    this.model = undefined;
    const wasBlocked = this.blockedReason !== undefined;
    this.blockedReason = undefined;
    if (this.closed) return;
    this.health.state = "down";
    noteError(this.health, err ?? new Error("connection closed by the broker"));
    this.o.log("warn", `connection lost: ${err?.message ?? "closed"}`);
    for (const l of this.listeners) {
      if (wasBlocked) l.unblocked?.();
      l.down?.();
    }
    // Only a connection that stayed up resets the backoff. One that fails as soon as it is up (a frame
    // amqplib cannot parse, redelivered to every new connection) would otherwise reconnect, and log,
    // every 100 ms forever; so it waits longer each time, up to reconnectMaxDelay.
    if (Date.now() - this.upSince >= Math.max(STABLE_AFTER_MS, this.o.reconnectMaxDelay)) this.attempts = 0;
    this.scheduleReconnect(err);
  }

  private scheduleReconnect(err: unknown): void {
    if (this.closed || this.timer) return;
    this.health.state = "down";
    if (err !== undefined) noteError(this.health, err);
    this.attempts++;
    const delay = backoffDelay(this.attempts, this.o.reconnectInitialDelay, this.o.reconnectMaxDelay);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.attempt().catch((e: unknown) => {
        if (this.closed) return; // closed while connecting: nothing failed that anyone waits for
        this.reportFailure(e);
        this.scheduleReconnect(e);
      });
    }, delay);
  }

  /**
   * A failed reconnect is logged when its reason is new, and a reason that stays the same once a minute:
   * with the backoff capped at reconnectMaxDelay, an outage of a day was 8,640 lines per sink.
   */
  private reportFailure(e: unknown): void {
    const reason = (e as Error).message;
    const now = Date.now();
    const last = this.lastFailure;
    if (last?.reason === reason && now - last.at < FAILURE_REMINDER_MS) return;
    this.lastFailure = { reason, at: now };
    const again = last?.reason === reason ? " (still failing; retrying, logged once a minute)" : "";
    this.o.log("warn", `reconnect attempt ${this.attempts} failed: ${reason}${again}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    // A connect in progress is cut short, not awaited: against a server that accepts TCP but never
    // answers it takes the whole connect timeout (10 s), and its socket would keep the process alive.
    // Only while connecting: the signal stays attached to the socket of a connection that came up.
    if (this.connecting) this.connectAbort?.abort();
    const model = this.model;
    this.model = undefined;
    this.listeners.clear();
    if (model) await model.close().catch(() => {});
  }
}

/** Refused credentials or vhost (AMQP reply 403/530), or not an AMQP server: retrying cannot help. */
export function isConfigProblem(err: unknown): boolean {
  // A socket error is the network, whatever digits its message holds ("connect ECONNREFUSED
  // 127.0.0.1:40301" once passed for a 403 here and failed open() instead of retrying).
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("E")) return false;
  const msg = err instanceof Error ? err.message : String(err);
  return /ACCESS[-_]REFUSED|NOT[-_]ALLOWED|\b(?:403|530) \(|Expected amqp/.test(msg);
}
