/**
 * What a Broker is built from: its options, and the hooks it calls (admission checks on each message,
 * the security hook around its lifecycle). broker.ts re-exports them; src/index.ts exports the public ones.
 */
import type { HeraldError } from "../errors.js";
import type { OutboxOptions } from "../storage/outbox.js";
import type { Transport } from "../transport/types.js";
import type { Logger } from "../util/log.js";
import type { Message } from "../wire/message.js";

/**
 * Who submitted a request. `routingId` is the ROUTER's id for the connection; for CURVE clients it is a
 * signed claim that acts as a bearer token for this broker (security/peer.ts): never log or forward it.
 */
export interface SubmitPeer {
  routingId: Buffer;
  /** The submit endpoint the request arrived on (as configured). */
  endpoint: string;
}

/**
 * Checks run on each accepted message before it is stored (signature, topic policy). A refusal is
 * counted and logged with `error.details.identity` / `keyId` (never the routing id) and never stored.
 */
export type AdmissionCheck = (msg: Message, peer: SubmitPeer) => HeraldError | undefined;

/** Started first and stopped last by the broker (trust store polling, ZAP handler); see security.ts. */
export interface BrokerSecurityHook {
  /** `fatal` stops the broker (fail closed), e.g. when the ZAP handler dies. */
  start(fatal: (err: HeraldError) => void): Promise<void>;
  /** Throws unless it is safe to bind CURVE server sockets now. */
  requireZap(): void;
  stop(): Promise<void>;
}

export interface BrokerOptions {
  /** This broker's name; forwarding sinks add it to `via` and loops are stopped on it. */
  name: string;
  /** Submit endpoints, e.g. `ipc:///run/herald/submit.sock`, `tcp://0.0.0.0:9939`. */
  submitEndpoints: string[];
  outbox: OutboxOptions;
  sinks: Transport[];
  maxBodyBytes: number;
  maxBatch: number;
  shutdownGraceMs?: number;
  /**
   * Delay before PUB dispatch after start, so subscribers reconnecting after a restart see the backlog.
   * 0 when absent; configured brokers (`herald serve`, createBroker) take `broker.publishDelay` (1.5 s).
   */
  publishDelayMs?: number;
  /** After an unclean stop, ZeroMQ sinks resend this many messages before their cursor (default 10,000 = HWM). */
  crashRewind?: number;
  admission?: AdmissionCheck[];
  /** Socket options for every submit endpoint (e.g. test overrides). */
  submitSocketOptions?: Record<string, unknown>;
  /** Per-endpoint socket options (CURVE on tcp:// submit endpoints only), merged over submitSocketOptions. */
  submitSocketOptionsFor?: (endpoint: string) => Record<string, unknown> | undefined;
  security?: BrokerSecurityHook;
  log?: Logger;
  /** Called after a fail-stop storage error; `herald serve` exits non-zero. */
  onFatal?: (err: HeraldError) => void;
  /**
   * Sinks no longer configured whose pending messages may be dropped (`herald serve --forget-sink`).
   * Without it a start refuses to drop a removed sink's backlog (removed-sinks.ts).
   */
  forgetSinks?: string[];
}
