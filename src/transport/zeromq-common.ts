import { randomBytes } from "node:crypto";
import * as zmq from "zeromq";
import { ClosedError, HeraldError, SecurityError, TransportError } from "../errors.js";

/**
 * Socket options and error translation shared by the ZeroMQ publish and subscribe transports.
 * Everything network-facing gets a finite linger (the default -1 keeps the process alive at exit), a
 * maxMessageSize (libzmq disconnects a peer that sends more), ZMTP heartbeats (so a dead TCP peer
 * becomes a disconnect instead of a silent half-open connection) and reconnect intervals.
 */

/** ZMTP heartbeat settings in milliseconds; `false` turns heartbeats off (very old ZMTP 3.0 peers). */
export interface HeartbeatOptions {
  /** Send a PING every `interval` ms when the connection is idle. */
  interval: number;
  /** Drop the connection when nothing arrives for `timeout` ms after a PING (default 3 x interval). */
  timeout?: number;
  /** Ask the peer to drop us after `timeToLive` ms of silence (default = timeout). */
  timeToLive?: number;
}

export const DEFAULT_HEARTBEAT: HeartbeatOptions = { interval: 10_000, timeout: 30_000 };
/** Default largest envelope frame, a bit more than twice limits.maxBodyBytes (JSON escaping, headers). */
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
export const DEFAULT_RECONNECT_INTERVAL = 100;
// fedmsg's own default (`zmq_reconnect_ivl_max`). It must stay below a broker's `publishDelay`, or a
// subscriber that backed off while the broker was down reconnects after the first messages went out.
export const DEFAULT_RECONNECT_MAX_INTERVAL = 1_000;

/** The socket options both transports set; spread into a zeromq socket constructor. */
export interface CommonSocketOptions {
  linger: number;
  maxMessageSize: number;
  heartbeatInterval?: number;
  heartbeatTimeout?: number;
  heartbeatTimeToLive?: number;
}

export function commonSocketOptions(o: {
  linger: number;
  maxMessageSize: number;
  heartbeat?: HeartbeatOptions | false | undefined;
}): CommonSocketOptions {
  const out: CommonSocketOptions = { linger: o.linger, maxMessageSize: o.maxMessageSize };
  const hb = o.heartbeat === undefined ? DEFAULT_HEARTBEAT : o.heartbeat;
  if (hb !== false && hb.interval > 0) {
    const timeout = hb.timeout ?? hb.interval * 3;
    out.heartbeatInterval = hb.interval;
    out.heartbeatTimeout = timeout;
    out.heartbeatTimeToLive = hb.timeToLive ?? timeout;
  }
  return out;
}

/** CURVE server side (a bound PUB): our own key pair, Z85 strings of 40 characters. */
export interface CurveServerOptions {
  secretKey: string;
  publicKey: string;
}

/** CURVE client side (a connecting SUB): the server's public key and our own key pair. */
export interface CurveClientOptions {
  serverKey: string;
  publicKey: string;
  secretKey: string;
}

export function curveServerOptions(
  curve: CurveServerOptions | undefined,
  zapDomain: string | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (zapDomain !== undefined) out["zapDomain"] = zapDomain;
  if (curve === undefined) return out;
  assertCurve();
  assertZ85(curve.secretKey, "curve.secretKey");
  assertZ85(curve.publicKey, "curve.publicKey");
  return { ...out, curveServer: true, curveSecretKey: curve.secretKey, curvePublicKey: curve.publicKey };
}

export function curveClientOptions(curve: CurveClientOptions | undefined): Record<string, unknown> {
  if (curve === undefined) return {};
  assertCurve();
  assertZ85(curve.serverKey, "curve.serverKey");
  assertZ85(curve.publicKey, "curve.publicKey");
  assertZ85(curve.secretKey, "curve.secretKey");
  return {
    curveServerKey: curve.serverKey,
    curvePublicKey: curve.publicKey,
    curveSecretKey: curve.secretKey,
  };
}

function assertCurve(): void {
  if (!zmq.capability.curve)
    throw new SecurityError(
      "SECURITY",
      "this zeromq build has no CURVE support (zmq.capability.curve is false): reinstall the zeromq package with a prebuilt binary that includes libsodium/tweetnacl, or set security.curve: false",
    );
}

const Z85 = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

function assertZ85(key: string, what: string): void {
  if (typeof key !== "string" || !Z85.test(key))
    throw new SecurityError(
      "SECURITY",
      `${what} is not a 40-character Z85 CURVE key: generate a pair with 'herald keys generate' (zmq.curveKeyPair())`,
    );
}

interface ZmqErrorLike {
  code?: unknown;
  message?: unknown;
}

function zmqCode(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as ZmqErrorLike).code;
  return typeof code === "string" ? code : undefined;
}

/**
 * Turn a zeromq.js error into a typed herald error whose message names the problem and the fix.
 * `what` says which socket (e.g. "broker.publish 'legacy'"), `endpoint` the address involved.
 */
/** The shim's sockets (names shim-<service>, shim-watch-<service>) bind a service's old ports, not broker.publish. */
function inUseFix(what: string): string {
  return what.includes("'shim-")
    ? "stop it (the old app or fedmsg-relay still running?): the shim binds a legacy service's ports from its endpoint list"
    : "stop it or change broker.publish[n].endpoint";
}

export function translateZmqError(
  err: unknown,
  op: "bind" | "connect" | "send" | "receive",
  endpoint: string,
  what: string,
): HeraldError {
  if (err instanceof HeraldError) return err;
  const code = zmqCode(err);
  const raw = err instanceof Error ? err.message : String(err);
  const fail = (message: string, retryable = false): HeraldError =>
    new TransportError("TRANSPORT", message, {
      cause: err,
      retryable,
      details: { endpoint, op, zmqCode: code },
    });
  switch (code) {
    case "EADDRINUSE":
      return fail(
        `address ${endpoint} is in use: another herald serve or fedmsg publisher is bound there; ${inUseFix(what)} (${what})`,
      );
    case "EADDRNOTAVAIL":
      return fail(
        `address ${endpoint} does not belong to this host: bind to one of its own addresses, 127.0.0.1 or 0.0.0.0 (${what})`,
      );
    case "EPROTONOSUPPORT":
    case "ENOCOMPATPROTO":
    case "EINVAL":
      return fail(
        `endpoint '${endpoint}' is not a usable ZeroMQ address: write tcp://host:port, tcp://127.0.0.1:* or ipc:///path (${what})`,
      );
    case "ENOENT":
      return fail(
        `cannot ${op} ${endpoint}: the directory of the ipc socket does not exist; create it or set paths.runtimeDir (${what})`,
      );
    case "EACCES":
      return fail(
        `permission denied to ${op} ${endpoint}: use a port above 1024, or an ipc path this user may write (${what})`,
      );
    case "ENODEV":
      return fail(`network interface in ${endpoint} does not exist on this host (${what})`);
    case "EBADF":
    case "ENOTSOCK":
    case "ETERM":
      return new ClosedError(`ZeroMQ socket for ${what}`);
    case "EBUSY":
      return fail(
        `${what}: a second concurrent ${op} on one ZeroMQ socket (herald bug: sockets must have one owner)`,
        true,
      );
    case "EAGAIN":
      return fail(`${what}: ${op} on ${endpoint} timed out; the peer is slow or gone, retry later`, true);
    default:
      return fail(`${what}: ZeroMQ ${op} on ${endpoint} failed: ${raw}${code ? ` (${code})` : ""}`, true);
  }
}

/** Short random id for stream names. */
export function randomTag(): string {
  return randomBytes(6).toString("base64url");
}

/** Minimal logger shape (structurally compatible with src/util/log.ts Logger). */
export interface TransportLogger {
  warn(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

export const quietLogger: TransportLogger = { warn: () => {}, debug: () => {} };

/** Default: warnings to stderr, at most `burst` lines and then one per `every` (a garbage-spewing peer must not flood). */
export function stderrLogger(component: string, burst = 10, every = 1000): TransportLogger {
  let n = 0;
  return {
    warn: (msg, fields) => {
      n++;
      if (n > burst && n % every !== 0) return;
      const extra = fields ? ` ${JSON.stringify(fields)}` : "";
      const suffix = n > burst ? ` (${n} so far, further lines sampled)` : "";
      process.stderr.write(`${new Date().toISOString()} WARN  [${component}] ${msg}${extra}${suffix}\n`);
    },
    debug: () => {},
  };
}
