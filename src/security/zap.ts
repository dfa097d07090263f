import * as zmq from "zeromq";
import { SecurityError } from "../errors.js";
import type { Identity } from "./keys.js";
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
  byCurveKey(raw: Uint8Array): TrustedKey | undefined;
  byKeyId(keyId: string): TrustedKey | undefined;
}

export interface ZapOptions {
  logger?: SecurityLogger;
  /**
   * ZAP domains in which a client MUST set its routing id to its identity name (e.g. the submit
   * socket, so the broker knows who submitted). Elsewhere an empty routing id is admitted unmapped.
   */
  requireRoutingIdDomains?: readonly string[];
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
  socket: zmq.Router;
  trust: CurveKeyLookup;
  opts: ZapOptions;
  dead: Error | undefined;
  stopping: boolean;
  done: Promise<void>;
}

let state: ZapState | undefined;
const routes = new Map<string, { name: string; keyId: string }>();
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
    await socket.bind(ZAP_ENDPOINT);
  } catch (err) {
    socket.close();
    throw new SecurityError(
      "SECURITY",
      `cannot bind the ZAP handler on ${ZAP_ENDPOINT} (${(err as Error).message}): another ZAP handler owns it in this process`,
      { cause: err },
    );
  }
  routes.clear();
  stats = { allowed: 0, denied: 0, deniedByReason: {} };
  const s: ZapState = { socket, trust, opts, dead: undefined, stopping: false, done: Promise.resolve() };
  s.done = serve(s);
  state = s;
}

async function serve(s: ZapState): Promise<void> {
  let error: Error | undefined;
  try {
    for await (const frames of s.socket) {
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
  routes.clear();
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

/**
 * The identity a Router peer authenticated as, from its routing id (recorded at its ZAP handshake).
 * undefined for peers that set no routing id, or whose key has since been revoked or removed.
 */
export function identityOf(routingId: Uint8Array | string): string | undefined {
  const route = routes.get(Buffer.from(routingId).toString("hex"));
  if (!route || !state) return undefined;
  const key = state.trust.byKeyId(route.keyId);
  return key && !key.revoked ? route.name : undefined;
}

/** Test hook: make the running handler's loop die as if the socket failed. */
export function killZapForTest(): void {
  state?.socket.close();
}

// Request: routing id, empty, version, request id, domain, address, identity, mechanism, credentials...
function answer(s: ZapState, frames: Buffer[]): Buffer[] | undefined {
  const [rid, empty, version, requestId, domainB, addressB, identityB, mechanismB, cred] = frames;
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
  const routingId = identityB ?? Buffer.alloc(0);
  const decide = (allowed: boolean, reason: string, key?: TrustedKey): Buffer[] => {
    const d: ZapDecision = { allowed, domain, address, mechanism, identity: key?.name, reason };
    record(s, d);
    return allowed ? reply("200", "OK", key!.name) : reply("400", reason, "");
  };
  if (version?.toString() !== "1.0") return decide(false, "bad ZAP version");
  if (mechanism !== "CURVE")
    return decide(false, `mechanism ${mechanism || "(none)"} is not allowed, only CURVE`);
  if (cred === undefined || cred.length !== 32) return decide(false, "malformed CURVE credentials");
  const key = s.trust.byCurveKey(cred);
  if (!key) return decide(false, "client key is not in the trust directory");
  if (key.revoked) return decide(false, `client key ${key.keyId} is revoked`);
  if (routingId.length === 0) {
    if (s.opts.requireRoutingIdDomains?.includes(domain))
      return decide(
        false,
        `domain '${domain}' requires the routing id to be the identity name '${key.name}'`,
      );
    return decide(true, "trusted key", key);
  }
  if (routingId.toString("utf8") !== key.name)
    return decide(false, `routing id must equal the identity name '${key.name}'`);
  routes.set(routingId.toString("hex"), { name: key.name, keyId: key.keyId });
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
 * curveClientOptions plus `routingId` = identity name, which is how a Router server learns who a Dealer
 * is (identityOf). Only Dealer/Router/Req sockets accept routingId; a Subscriber throws on it.
 */
export function curveDealerOptions(
  identity: Identity,
  serverPublicZ85: string,
): { curveServerKey: string; curvePublicKey: string; curveSecretKey: string; routingId: string } {
  return { ...curveClientOptions(identity, serverPublicZ85), routingId: identity.name };
}
