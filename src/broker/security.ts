import { randomBytes } from "node:crypto";
import { type HeraldError, SecurityError } from "../errors.js";
import type { Identity } from "../security/keys.js";
import { PeerIdentities } from "../security/peer.js";
import { type PolicyRules, TopicPolicy } from "../security/policy.js";
import { verifyMessage } from "../security/sign.js";
import { TrustStore } from "../security/trust.js";
import { assertCurveCapability, curveServerOptions, onDeath, requireZap } from "../security/zap.js";
import { registerZapDomain } from "../security/zap-domains.js";
import type { CurveServerOptions } from "../transport/zeromq-common.js";
import { type Logger, silentLogger } from "../util/log.js";
import type { Message } from "../wire/message.js";
import type { AdmissionCheck, BrokerSecurityHook, SubmitPeer } from "./broker.js";
import { SOURCE_PEER } from "./local-submit.js";

/** The endpoint prefix of in-process submits (LOCAL_PEER, SOURCE_PEER). */
const IN_PROCESS = "local:";

export interface BrokerSecurityOptions {
  trustDir: string;
  /** Trust directory poll interval (ms). */
  reloadIntervalMs: number;
  requireSignatures: boolean;
  clockSkewMs: number;
  policy: PolicyRules;
  strictTopics: boolean;
  /**
   * CURVE identities of the brokers that forward here. With CURVE on, only they may submit messages
   * carrying `via` (which stops loops and lifts the freshness limit); needs `curve`.
   */
  forwarders?: readonly string[];
  /** CURVE on TCP sockets with this broker identity (its .key loaded by the caller). */
  curve?: Identity | undefined;
  /** Name used in the ZAP domain (for the ZAP log); a random suffix keeps in-process brokers apart. */
  brokerName?: string;
  log?: Logger;
}

/** Does this configuration need the broker's security layer at all? */
export function securityWanted(s: {
  requireSignatures: boolean;
  policy: PolicyRules;
  strictTopics: boolean;
  curve: boolean;
}): boolean {
  return s.requireSignatures || s.strictTopics || s.curve || Object.keys(s.policy).length > 0;
}

/**
 * Everything the broker does for security: the trust store (reloaded while running), the admission
 * check (signature, then topic policy), and for CURVE the ZAP handler plus the server socket options.
 * Routing ids are bearer tokens (see security/peer.ts): they are resolved here and never logged.
 */
export class BrokerSecurity implements BrokerSecurityHook {
  readonly trust: TrustStore;
  readonly policy: TopicPolicy;
  readonly zapDomain: string;
  private readonly peers: PeerIdentities | undefined;
  private readonly log: Logger;
  private release: (() => Promise<void>) | undefined;
  private unwatch: (() => void) | undefined;
  /** Rejections by code (BAD_SIGNATURE, UNKNOWN_KEY, REVOKED_KEY, UNSIGNED, STALE, UNAUTHORIZED_TOPIC). */
  readonly rejected: Record<string, number> = {};

  constructor(private readonly opts: BrokerSecurityOptions) {
    this.log = opts.log ?? silentLogger;
    const secLog = {
      info: (m: string, f?: Record<string, unknown>) => this.log.info(m, f),
      warn: (m: string, f?: Record<string, unknown>) => this.log.warn(m, f),
    };
    this.trust = new TrustStore(opts.trustDir, { reloadInterval: opts.reloadIntervalMs, logger: secLog });
    this.policy = new TopicPolicy(opts.policy, { strictTopics: opts.strictTopics });
    this.zapDomain = `herald/${opts.brokerName ?? "broker"}/${randomBytes(4).toString("hex")}`;
    if (opts.curve) this.peers = new PeerIdentities(this.trust, opts.curve.curvePublic);
  }

  get curveIdentity(): Identity | undefined {
    return this.opts.curve;
  }

  /** Load the trust dir and start polling it; with CURVE, start (or join) the ZAP handler first. */
  async start(fatal: (err: HeraldError) => void): Promise<void> {
    this.trust.start();
    if (!this.opts.curve) return;
    assertCurveCapability();
    const secLog = { info: this.log.info.bind(this.log), warn: this.log.warn.bind(this.log) };
    this.release = await registerZapDomain(this.zapDomain, this.trust, secLog);
    this.unwatch = onDeath((err) =>
      fatal(
        new SecurityError(
          "SECURITY",
          `the ZAP handler died (${err.message}): CURVE sockets would admit every client, so the broker stops (fail closed); restart it`,
          { cause: err },
        ),
      ),
    );
  }

  /** Fail closed: throws unless the ZAP handler runs. Called right before the broker binds CURVE sockets. */
  requireZap(): void {
    if (this.opts.curve) requireZap();
  }

  async stop(): Promise<void> {
    this.trust.stop();
    this.unwatch?.();
    this.unwatch = undefined;
    await this.release?.();
    this.release = undefined;
  }

  /** Socket options for a submit endpoint: CURVE on tcp:// only (IPC is guarded by file permissions). */
  submitSocketOptions(endpoint: string): Record<string, unknown> | undefined {
    if (!this.opts.curve || !endpoint.startsWith("tcp://")) return undefined;
    return curveServerOptions(this.opts.curve, this.zapDomain);
  }

  /** For a herald-format PUB socket on tcp://: CURVE keys for ZmqPublishTransport (legacy ones stay plain). */
  publishCurve(endpoint: string, format: "herald" | "legacy"): CurveServerOptions | undefined {
    if (!this.opts.curve || format !== "herald" || !endpoint.startsWith("tcp://")) return undefined;
    return { secretKey: this.opts.curve.curveSecret, publicKey: this.opts.curve.curvePublic };
  }

  /** The identity of a CURVE submitter from its signed routing id (undefined: anonymous or not CURVE). */
  peerIdentity(peer: SubmitPeer): string | undefined {
    if (!this.peers || !peer.endpoint.startsWith("tcp://")) return undefined;
    return this.peers.identityOf(peer.routingId);
  }

  /**
   * Forwarder first (`via` is unsigned, so it counts only from a broker named in security.forwarders),
   * then signature, then topic policy: fedmsg's order, so a forgery never reads as a policy problem.
   */
  readonly admission: AdmissionCheck = (msg: Message, peer: SubmitPeer) => {
    const viaPeer = this.peerIdentity(peer);
    const via = this.viaStanding(msg, peer, viaPeer);
    // No age limit for what a forwarding broker sends or a source queue held: both legitimately delay.
    const unlimited = via === "forwarded" || peer.endpoint === SOURCE_PEER.endpoint;
    const err = via instanceof SecurityError ? via : this.check(msg, viaPeer, unlimited);
    if (err) this.rejected[err.code] = (this.rejected[err.code] ?? 0) + 1;
    return err;
  };

  /**
   * What the message's `via` counts for from this peer: "forwarded" (a forwarding broker's word: no age
   * limit), "marker" (only the loop stop reads it), or a refusal.
   *
   * With CURVE on, `via` is believed only from an authenticated forwarding broker: from anyone else it
   * would buy an "ok" with nothing stored (the loop stop) or replay an old signed message past the
   * freshness window. Retryable: a forwarding broker keeps the messages until this one lists it.
   * Without CURVE nobody is authenticated and every submitter is trusted alike (IPC file permissions).
   *
   * In-process submits (the in-broker shim, source ingest: `local:` peers) are no forwarding broker and can
   * never become one, so FORWARD_REFUSED would be final for them, yet retryable by its code: source ingest
   * retried it forever at the head of its queue, and one AMQP message with a `via` (no key needed: it is
   * refused before the signature) stopped the whole source. Their `via` is whatever the source's publisher
   * wrote, so it lifts nothing here, CURVE or not: the message is judged as a submission (signature,
   * policy; freshness for the shim, none for a source, whose queue delays), and `via` serves only the loop stop (a message naming this broker came back
   * around; the broker drops it, counted in loopsStopped). Dropping is all a forged `via` can buy, and only
   * for its own copy.
   */
  private viaStanding(
    msg: Message,
    peer: SubmitPeer,
    viaPeer: string | undefined,
  ): "forwarded" | "marker" | SecurityError {
    if (!msg.via?.length || peer.endpoint.startsWith(IN_PROCESS)) return "marker";
    if (!this.opts.curve) return "forwarded";
    if (viaPeer !== undefined && this.opts.forwarders?.includes(viaPeer)) return "forwarded";
    const who = viaPeer === undefined ? `an unauthenticated submitter on ${peer.endpoint}` : `'${viaPeer}'`;
    const fix =
      viaPeer === undefined
        ? "forward over CURVE on a tcp:// submit endpoint (sinks: serverKey)"
        : `add '${viaPeer}' to security.forwarders on this broker`;
    return new SecurityError(
      "FORWARD_REFUSED",
      `message ${msg.id} carries via ${JSON.stringify(msg.via)} but ${who} is not a forwarding broker here: ${fix}, or submit it without via`,
      { retryable: true, details: { identity: viaPeer ?? null, via: msg.via } },
    );
  }

  private check(msg: Message, viaPeer: string | undefined, unlimitedAge: boolean): HeraldError | undefined {
    // Our own message back from a forwarding loop: the broker answers it without storing, whatever its age
    // (it may have waited in the other broker's outbox longer than clockSkew).
    if (this.opts.brokerName !== undefined && msg.via?.includes(this.opts.brokerName)) return undefined;
    const verified = verifyMessage(msg, this.trust, {
      clockSkewMs: this.opts.clockSkewMs,
      requireSignature: this.opts.requireSignatures,
      // A message a forwarding broker sends may have waited in its outbox during an outage: with CURVE
      // viaStanding has made sure the peer is one; without it nobody is authenticated and `via` is taken
      // as given (docs/security.md), else a forward chain loses, as STALE, all it stored during an outage.
      // Likewise a source's queue holds messages while this broker is down: STALE would dead-letter them.
      ...(unlimitedAge ? { maxAgeMs: Number.POSITIVE_INFINITY } : {}),
    });
    if (!verified.ok)
      return new SecurityError(verified.code, verified.error.message, {
        details: { ...verified.error.details, identity: viaPeer ?? null },
      });
    const identity = verified.identity ?? viaPeer;
    const decision = this.policy.check(identity, msg.topic);
    if (!decision.ok) return decision.error;
    return undefined;
  }
}
