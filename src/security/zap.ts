import type * as Zmq from "zeromq";
import { SecurityError } from "../errors.js";
import { failpoint } from "../storage/failpoints.js";
import { zmq } from "../util/zeromq.js";
import type { Identity } from "./keys.js";
import { routingIdFor } from "./peer.js";
import type { SecurityLogger, TrustedKey } from "./trust.js";

/**
 * ZAP (ZeroMQ RFC 27) handler: the only thing standing between a CURVE server socket and every client
 * that knows its public key. libzmq asks `inproc://zeromq.zap.01` in the socket's context; if nobody is
 * bound there it ADMITS every client (fail open). So: start this before binding any CURVE server,
 * call requireZap() right before each bind, and treat onDeath as fatal for CURVE servers.
 */
export const ZAP_ENDPOINT = "inproc://zeromq.zap.01";
export const DEFAULT_ZAP_DOMAIN = "herald";

/** What the ZAP handler needs from a trust store (TrustStore implements it). */
export interface CurveKeyLookup {
  /** `domain` is the ZAP domain of the server socket being connected to (see zap-domains.ts). */
  byCurveKey(raw: Uint8Array, domain?: string): TrustedKey | undefined;
  byKeyId(keyId: string): TrustedKey | undefined;
}

export interface ZapOptions {
  logger?: SecurityLogger;
  /** Called for every decision (metrics, tests). */
  onDecision?: (d: ZapDecision) => void;
}

export interface ZapDecision {
  allowed: boolean;
  domain: string;
  address: string;
  mechanism: string;
  identity: string | undefined;
  reason: string;
}

export interface ZapStats {
  allowed: number;
  denied: number;
  deniedByReason: Record<string, number>;
}

interface ZapState {
  socket: Zmq.Router;
  trust: CurveKeyLookup;
  opts: ZapOptions;
  dead: Error | undefined;
  stopping: boolean;
  done: Promise<void>;
}

let state: ZapState | undefined;
const deathListeners = new Set<(err: Error) => void>();
let stats: ZapStats = { allowed: 0, denied: 0, deniedByReason: {} };

/** Throws a typed error unless this libzmq build has CURVE. Call once at startup. */
export function assertCurveCapability(): void {
  if (zmq.capability.curve !== true)
    throw new SecurityError(
      "UNSUPPORTED",
      "this zeromq build has no CURVE support (zmq.capability.curve is false): reinstall zeromq with its prebuilt binaries, or set security.curve: false",
    );
}

/** Bind the ZAP handler in the default context (shared with every socket herald creates). */
export async function startZap(trust: CurveKeyLookup, opts: ZapOptions = {}): Promise<void> {
  assertCurveCapability();
  if (state && !state.dead)
    throw new SecurityError(
      "SECURITY",
      "a ZAP handler is already running in this process: call stopZap() first",
    );
  const socket = new zmq.Router({ linger: 0 });
  try {
    await bindZapEndpoint(socket);
  } catch (err) {
    socket.close();
    throw new SecurityError(
      "SECURITY",
      `cannot bind the ZAP handler on ${ZAP_ENDPOINT} (${(err as Error).message}): another ZAP handler owns it in this process`,
      { cause: err },
    );
  }
  stats = { allowed: 0, denied: 0, deniedByReason: {} };
  const s: ZapState = { socket, trust, opts, dead: undefined, stopping: false, done: Promise.resolve() };
  s.done = serve(s);
  state = s;
}

/** A just-closed handler releases the inproc endpoint asynchronously: retry EADDRINUSE briefly. */
async function bindZapEndpoint(socket: Zmq.Router): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    try {
      await socket.bind(ZAP_ENDPOINT);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== "EADDRINUSE" || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function serve(s: ZapState): Promise<void> {
  let error: Error | undefined;
  try {
    for await (const frames of s.socket) {
      failpoint("zap.request"); // tests: HERALD_FAILPOINTS=zap.request=error kills the handler (serve exits 6)
      const reply = answer(s, frames);
      if (reply) await s.socket.send(reply);
    }
  } catch (err) {
    error = err instanceof Error ? err : new Error(String(err));
  }
  if (s.stopping) return;
  // The loop ended without stopZap(): from now on libzmq would admit every CURVE client.
  s.dead = error ?? new Error("ZAP handler socket closed unexpectedly");
  s.opts.logger?.warn("ZAP handler died: CURVE servers are no longer guarded", { error: s.dead.message });
  for (const l of deathListeners) l(s.dead);
}

export async function stopZap(): Promise<void> {
  const s = state;
  if (!s) return;
  s.stopping = true;
  state = undefined;
  s.socket.close();
  await s.done;
}

/** Fail closed: call right before binding any CURVE server socket. */
export function requireZap(): void {
  if (!state)
    throw new SecurityError(
      "SECURITY",
      "no ZAP handler is running: call startZap(trust) before binding CURVE server sockets (without it libzmq admits every CURVE client)",
    );
  if (state.dead)
    throw new SecurityError(
      "SECURITY",
      `the ZAP handler died (${state.dead.message}): restart the process; CURVE sockets must not bind without it`,
    );
}

export function zapRunning(): boolean {
  return state !== undefined && state.dead === undefined;
}

/** Register a callback for the handler's death; returns an unsubscribe function. */
export function onDeath(listener: (err: Error) => void): () => void {
  deathListeners.add(listener);
  return () => deathListeners.delete(listener);
}

export function zapStats(): ZapStats {
  return { ...stats, deniedByReason: { ...stats.deniedByReason } };
}

/** Test hook: make the running handler's loop die as if the socket failed. */
export function killZapForTest(): void {
  state?.socket.close();
}

/**
 * Request: routing id, empty, version, request id, domain, address, identity, mechanism, credentials.
 * NOTE: libzmq 4.3.5 fills "identity" with the SERVER socket's own routing id option, not the client's
 * (verified by test), so ZAP cannot tie a client's routing id to its key; see peer.ts for that.
 */
function answer(s: ZapState, frames: Buffer[]): Buffer[] | undefined {
  const [rid, empty, version, requestId, domainB, addressB, , mechanismB, cred] = frames;
  if (!rid || !empty || !requestId) return undefined;
  const reply = (code: "200" | "400", text: string, userId: string): Buffer[] => [
    rid,
    Buffer.alloc(0),
    Buffer.from("1.0"),
    requestId,
    Buffer.from(code),
    Buffer.from(text),
    Buffer.from(userId),
    Buffer.alloc(0),
  ];
  const domain = domainB?.toString("utf8") ?? "";
  const address = addressB?.toString("utf8") ?? "";
  const mechanism = mechanismB?.toString("utf8") ?? "";
  const decide = (allowed: boolean, reason: string, key?: TrustedKey): Buffer[] => {
    const d: ZapDecision = { allowed, domain, address, mechanism, identity: key?.name, reason };
    record(s, d);
    return allowed ? reply("200", "OK", key!.name) : reply("400", reason, "");
  };
  if (version?.toString() !== "1.0") return decide(false, "bad ZAP version");
  if (mechanism !== "CURVE")
    return decide(false, `mechanism ${mechanism || "(none)"} is not allowed, only CURVE`);
  if (cred === undefined || cred.length !== 32) return decide(false, "malformed CURVE credentials");
  const key = s.trust.byCurveKey(cred, domain);
  if (!key) return decide(false, "client key is not in the trust directory");
  if (key.revoked) return decide(false, `client key ${key.keyId} is revoked`);
  return decide(true, "trusted key", key);
}

function record(s: ZapState, d: ZapDecision): void {
  if (d.allowed) stats.allowed++;
  else {
    stats.denied++;
    const reason = d.reason.replace(/'[^']*'|\S+:[0-9a-f]{16}/g, "*");
    stats.deniedByReason[reason] = (stats.deniedByReason[reason] ?? 0) + 1;
    s.opts.logger?.warn("CURVE client denied", { domain: d.domain, address: d.address, reason: d.reason });
  }
  s.opts.onDecision?.(d);
}

/** Socket options for a CURVE server (Router, Publisher...). Call requireZap() before binding it. */
export function curveServerOptions(
  identity: Identity,
  zapDomain: string = DEFAULT_ZAP_DOMAIN,
): { curveServer: true; curveSecretKey: string; zapDomain: string } {
  return { curveServer: true, curveSecretKey: identity.curveSecret, zapDomain };
}

/** Socket options for a CURVE client of a server whose CURVE public key (Z85) is given. */
export function curveClientOptions(
  identity: Identity,
  serverPublicZ85: string,
): { curveServerKey: string; curvePublicKey: string; curveSecretKey: string } {
  return {
    curveServerKey: serverPublicZ85,
    curvePublicKey: identity.curvePublic,
    curveSecretKey: identity.curveSecret,
  };
}

/**
 * curveClientOptions plus a signed `routingId` (see peer.ts) from which the Router server learns who
 * this Dealer is (PeerIdentities.identityOf). Only Dealer/Router/Req sockets accept routingId; a
 * Subscriber throws on it. Call once per socket: each call makes a fresh routing id.
 */
export function curveDealerOptions(
  identity: Identity,
  serverPublicZ85: string,
): { curveServerKey: string; curvePublicKey: string; curveSecretKey: string; routingId: string } {
  return {
    ...curveClientOptions(identity, serverPublicZ85),
    routingId: routingIdFor(identity, serverPublicZ85),
  };
}
