import { type ErrorCode, SecurityError } from "../errors.js";
import { nodeCrypto } from "../util/node-crypto.js";
import { canonicalJson } from "../wire/json.js";
import type { Headers, Message } from "../wire/message.js";
import type { Identity } from "./keys.js";
import type { TrustedKey } from "./trust.js";

export const SIGNER_HEADER = "herald.signer";
export const SIG_HEADER = "herald.sig";
/** Set by the shim on messages it ingested from a legacy fedmsg publisher and signs on their behalf. */
export const VOUCHED_HEADER = "herald.vouched";
/** Per-hop metadata that relays may add after signing; never signed, never to be trusted. */
export const HOP_HEADER_PREFIX = "herald.hop.";
/** Domain separation: these bytes can never be mistaken for any other Ed25519-signed structure. */
export const SIGNATURE_DOMAIN = "herald-sig-v1\n";

export const DEFAULT_CLOCK_SKEW_MS = 120_000;

export type VerifyCode = Extract<
  ErrorCode,
  "BAD_SIGNATURE" | "UNKNOWN_KEY" | "REVOKED_KEY" | "UNSIGNED" | "STALE"
>;

export interface VerifyOk {
  ok: true;
  /** false only when the message is unsigned and signatures are not required. */
  signed: boolean;
  /** The signer's identity name (the shim's own, for legacy-vouched messages). */
  identity: string | undefined;
  keyId: string | undefined;
  /** `"legacy"` when the signer vouches for a message it ingested from a fedmsg publisher. */
  vouched: string | undefined;
}

export interface VerifyFail {
  ok: false;
  code: VerifyCode;
  /** Ready to throw or to send back as a submit reply (`error.toJSON()`). */
  error: SecurityError;
  keyId: string | undefined;
}

export type VerifyResult = VerifyOk | VerifyFail;

/** What verification needs from a trust store (TrustStore implements it). */
export interface KeyLookup {
  byKeyId(keyId: string): TrustedKey | undefined;
}

export interface VerifyOptions {
  /** Wall-clock "now" in ms; default Date.now(). */
  now?: number;
  /** How far `sentAt` may be in the future (and, by default, in the past). Default 120 s. */
  clockSkewMs?: number;
  /**
   * How old `sentAt` may be. Default = clockSkewMs, which suits the broker checking fresh submissions.
   * Consumers reading from durable queues or archives should pass Infinity (messages wait in outboxes).
   */
  maxAgeMs?: number;
  requireSignature?: boolean;
}

/**
 * The exact bytes an Ed25519 signature covers: the domain prefix, then the RFC 8785 canonical JSON of
 * every field that is fixed at creation. `seq` and `stream` are excluded (set per publishing socket,
 * rewritten on every hop), as are `herald.sig` itself and `herald.hop.*` headers.
 */
export function signedBytes(msg: Message): Buffer {
  const signer = msg.headers[SIGNER_HEADER];
  if (typeof signer !== "string")
    throw new SecurityError("BAD_SIGNATURE", `header ${SIGNER_HEADER} is missing`);
  // fromEntries defines own properties: an assignment would drop a header named __proto__ from the signed
  // bytes while the decoded message keeps it (a relay could then change it unnoticed).
  const headers: Headers = Object.fromEntries(
    Object.entries(msg.headers).filter(([k]) => k !== SIG_HEADER && !k.startsWith(HOP_HEADER_PREFIX)),
  );
  const origin: Record<string, string | number> = {
    host: msg.origin.host,
    app: msg.origin.app,
    pid: msg.origin.pid,
  };
  if (msg.origin.user !== undefined) origin["user"] = msg.origin.user;
  const signed = {
    id: msg.id,
    topic: msg.topic,
    sent_at: msg.sentAt,
    schema: msg.schema,
    schema_version: msg.schemaVersion,
    headers,
    body: msg.body,
    origin,
    signer,
  };
  return Buffer.from(SIGNATURE_DOMAIN + canonicalJson(signed), "utf8");
}

export interface SignOptions {
  /** Mark the message as vouched for (the shim signing what a legacy publisher sent). */
  vouched?: "legacy";
}

/** A copy of `msg` with `herald.signer` and `herald.sig` set (any previous signature replaced). */
export function signMessage(msg: Message, identity: Identity, opts: SignOptions = {}): Message {
  const headers: Headers = { ...msg.headers, [SIGNER_HEADER]: identity.keyId };
  delete headers[SIG_HEADER];
  if (opts.vouched !== undefined) headers[VOUCHED_HEADER] = opts.vouched;
  const copy: Message = { ...msg, headers, origin: { ...msg.origin } };
  const sig = nodeCrypto().sign(null, signedBytes(copy), identity.signKey);
  copy.headers[SIG_HEADER] = sig.toString("base64");
  return copy;
}

/** The shim's way to sign a message it ingested from a legacy publisher. */
export function vouchLegacy(msg: Message, shimIdentity: Identity): Message {
  return signMessage(msg, shimIdentity, { vouched: "legacy" });
}

/**
 * The shim's one call at the legacy boundary, after ingest has built the herald message: sign it with
 * the shim's own identity and `herald.vouched = "legacy"`. The old fedmsg crypto/signature/certificate
 * fields ride along in `fedmsg.*` headers and are covered by the signature. Same as vouchLegacy; named
 * for the call site.
 */
export function vouchIngested(msg: Message, shimIdentity: Identity): Message {
  return vouchLegacy(msg, shimIdentity);
}

function fail(
  code: VerifyCode,
  message: string,
  keyId?: string,
  details: Record<string, unknown> = {},
): VerifyFail {
  return {
    ok: false,
    code,
    keyId,
    error: new SecurityError(code, message, { details: { ...details, ...(keyId ? { keyId } : {}) } }),
  };
}

/**
 * Check a message's signature, signer and freshness. Never throws; each failure has its own code.
 * Order: signature headers, key known, key not revoked, signature, then sentAt within the leeway.
 */
export function verifyMessage(msg: Message, trust: KeyLookup, opts: VerifyOptions = {}): VerifyResult {
  const signer = msg.headers[SIGNER_HEADER];
  const sig = msg.headers[SIG_HEADER];
  if (signer === undefined && sig === undefined) {
    if (opts.requireSignature)
      return fail(
        "UNSIGNED",
        `message ${msg.id} is not signed and this broker requires signatures: sign it with a trusted identity (security.identity)`,
      );
    return { ok: true, signed: false, identity: undefined, keyId: undefined, vouched: undefined };
  }
  if (typeof signer !== "string" || typeof sig !== "string")
    return fail(
      "BAD_SIGNATURE",
      `message ${msg.id} has an incomplete signature (${SIGNER_HEADER} and ${SIG_HEADER} go together): re-sign it`,
    );
  const sigBytes = Buffer.from(sig, "base64");
  if (sigBytes.length !== 64 || sigBytes.toString("base64") !== sig)
    return fail(
      "BAD_SIGNATURE",
      `message ${msg.id} has a malformed signature (not 64 bytes of base64): the message was altered in transit`,
      signer,
    );
  const key = trust.byKeyId(signer);
  if (!key)
    return fail(
      "UNKNOWN_KEY",
      `message ${msg.id} is signed by unknown key ${signer}: add its .pub file to the trust directory`,
      signer,
    );
  if (key.revoked)
    return fail(
      "REVOKED_KEY",
      `message ${msg.id} is signed by revoked key ${signer}: the publisher must use its new key`,
      signer,
    );
  let good = false;
  try {
    good = nodeCrypto().verify(null, signedBytes(msg), key.verifyKey, sigBytes);
  } catch {
    good = false; // unencodable content cannot carry a valid signature
  }
  if (!good)
    return fail(
      "BAD_SIGNATURE",
      `message ${msg.id} signature by ${signer} does not match its content: it was altered after signing`,
      signer,
    );
  const stale = freshnessProblem(msg.sentAt, opts);
  if (stale) return fail("STALE", `message ${msg.id} ${stale.text}`, signer, { skewMs: stale.skewMs });
  const vouched = msg.headers[VOUCHED_HEADER];
  return {
    ok: true,
    signed: true,
    identity: key.name,
    keyId: key.keyId,
    vouched: typeof vouched === "string" ? vouched : undefined,
  };
}

function freshnessProblem(sentAt: string, opts: VerifyOptions): { text: string; skewMs: number } | undefined {
  const now = opts.now ?? Date.now();
  const leeway = opts.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS;
  const maxAge = opts.maxAgeMs ?? leeway;
  const t = Date.parse(sentAt);
  if (Number.isNaN(t))
    return { text: `has an unreadable sentAt ${JSON.stringify(sentAt)}`, skewMs: Number.NaN };
  const skew = t - now;
  if (skew > leeway)
    return {
      text: `was sent ${fmtMs(skew)} in the future (leeway ${fmtMs(leeway)}): fix the publisher's clock (NTP)`,
      skewMs: skew,
    };
  if (-skew > maxAge)
    return {
      text: `was sent ${fmtMs(-skew)} ago, older than the allowed ${fmtMs(maxAge)}: a replay, or a publisher clock behind by that much (NTP)`,
      skewMs: skew,
    };
  return undefined;
}

function fmtMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms)}ms`;
}

/** verifyMessage, throwing the typed SecurityError on failure. */
export function assertVerified(msg: Message, trust: KeyLookup, opts: VerifyOptions = {}): VerifyOk {
  const r = verifyMessage(msg, trust, opts);
  if (!r.ok) throw r.error;
  return r;
}
