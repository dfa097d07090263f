import { accessSync, constants, readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import type { Dealer } from "zeromq";
import { ClosedError, ConnectionError, type HeraldError, SecurityError, TransportError } from "../errors.js";
import type { Identity } from "../security/keys.js";
import { curveDealerOptions } from "../security/zap.js";
import { backoffDelay, sleep } from "../util/backoff.js";
import { retryInterrupted, zmq } from "../util/zeromq.js";
import { randomChunk } from "../wire/message.js";
import { decodeReply, type Frame, type SubmitReply } from "../wire/submit.js";

export interface RequesterOptions {
  endpoint: string;
  timeoutMs: number;
  retries: number;
  socketOptions?: Record<string, unknown> | undefined;
  curve?: { identity: Identity; serverKey: string } | undefined;
}

interface Pending {
  sock: Dealer;
  resolve: (r: SubmitReply | Handshake) => void;
  reject: (e: Error) => void;
}

/**
 * A try ended by a failed handshake, not a timeout: "refused", the broker's ZAP handler refused our CURVE
 * key; "mismatch", one side speaks CURVE and the other not. libzmq does not reconnect such a socket: no
 * request on it can get through, only a new socket tries again.
 */
type Handshake = "refused" | "mismatch";

/**
 * A handshake failure this client met, for a request whose tries then time out: that error says it instead
 * of asking whether the broker runs. "mismatch" as above, met by an earlier try; "closed", the broker took
 * the connection and closed it during the handshake without a word (EPIPE, and libzmq reconnects): a
 * CURVE endpoint does that to a plain client now and then (2-8% of connections to a running broker in a
 * probe) instead of saying "mechanism mismatch", and always to a CURVE client with a wrong server key.
 */
type Trouble = "mismatch" | "closed";

/**
 * Request/reply with the broker, Lazy Pirate style. Any number of concurrent requests share one DEALER
 * socket (replies are matched by request id). A try that times out is sent again with the SAME frames
 * on a fresh socket, so the broker's dedup window makes retries safe. The socket it timed out on is
 * retired, not closed: other requests still waiting on it get their replies (a slow reply to one
 * request says nothing about theirs), and it is closed once none is left.
 */
export class Requester {
  private sock: Dealer | undefined;
  /** Sockets whose handshake failed (see Handshake): no use, replaced on next use. */
  private readonly failed = new WeakSet<Dealer>();
  /** When each Trouble was last met, until a handshake succeeds. */
  private readonly troubleAt: Record<Trouble, number> = { mismatch: 0, closed: 0 };
  private readonly pending = new Map<string, Pending>();
  private sendChain: Promise<unknown> = Promise.resolve();
  /** Request ids: unique per client (replies are matched within it), random prefix so logs tell clients apart. */
  private readonly requestPrefix = `${randomChunk(6).toString("hex")}-`;
  private requests = 0;
  private ipcSeenUntil = 0;
  private closed = false;

  constructor(private readonly opts: RequesterOptions) {}

  get endpoint(): string {
    return this.opts.endpoint;
  }

  async request(build: (requestId: string) => Frame[]): Promise<SubmitReply> {
    if (this.closed) throw new ClosedError("herald client");
    const requestId = `${this.requestPrefix}${(++this.requests).toString(36)}`;
    const frames = build(requestId);
    const unreachable = this.ipcUnreachable();
    if (unreachable !== undefined) throw unreachable;
    const since = Date.now();
    let failure: Handshake | undefined;
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      const sock = this.socket();
      const reply = await this.tryOnce(sock, requestId, frames);
      if (typeof reply === "object") return reply;
      // Lazy Pirate: a socket that timed out may be wedged on a dead peer; the next try (same ids) goes
      // on a fresh one. A failed handshake (see Handshake) is never retried by libzmq: only a new socket is.
      this.retire(sock);
      failure = reply;
      if (failure !== undefined && attempt < this.opts.retries) await sleep(backoffDelay(attempt, 100, 2000));
      if (this.closed) throw new ClosedError("herald client");
    }
    if (failure === "refused") throw this.refusedError();
    // Only what this request's tries met: a long-lived client's old trouble may be fixed by now.
    if (failure === "mismatch" || this.troubleAt.mismatch >= since) throw this.mismatchError();
    throw this.noAnswer(this.troubleAt.closed >= since);
  }

  close(): void {
    this.closed = true;
    this.sock?.close();
    this.sock = undefined;
    for (const p of this.pending.values()) {
      if (!p.sock.closed) p.sock.close(); // a retired socket still waiting for replies
      p.reject(new ClosedError("herald client"));
    }
    this.pending.clear();
  }

  private tryOnce(
    sock: Dealer,
    requestId: string,
    frames: Frame[],
  ): Promise<SubmitReply | Handshake | undefined> {
    return new Promise<SubmitReply | Handshake | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        resolve(undefined);
      }, this.opts.timeoutMs);
      this.pending.set(requestId, {
        sock,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      // One pending send per socket (zeromq.js): chain sends.
      this.sendChain = this.sendChain
        .then(() => (sock.closed ? undefined : sock.send(frames)))
        .catch(() => {});
    });
  }

  private socket(): Dealer {
    if (this.sock && !this.sock.closed && !this.failed.has(this.sock)) return this.sock;
    if (this.sock) this.retire(this.sock);
    const curve = this.opts.curve;
    const sock = new zmq.Dealer({
      linger: 0,
      sendHighWaterMark: 0,
      reconnectInterval: 100,
      reconnectMaxInterval: 1000,
      ...this.opts.socketOptions,
      // A fresh signed routing id per socket (curveDealerOptions makes a new nonce each call).
      ...(curve ? curveDealerOptions(curve.identity, curve.serverKey) : {}),
    });
    try {
      this.watchHandshake(sock, curve !== undefined);
      retryInterrupted(() => sock.connect(this.opts.endpoint));
    } catch (err) {
      sock.close();
      // Not translateZmqError: transport/zeromq-common loads node:crypto, which a one-shot publish avoids.
      throw new TransportError(
        "TRANSPORT",
        `cannot connect to '${this.opts.endpoint}': ${(err as Error).message}; write tcp://host:port or ipc:///path/to/submit.sock`,
        { cause: err },
      );
    }
    this.sock = sock;
    void this.readLoop(sock);
    return sock;
  }

  /**
   * A handshake that cannot succeed ends this socket's tries at once, with an error that says why, instead
   * of timeouts that blame a broker that is running. Not on a plain socket to an ipc:// endpoint: the
   * broker's IPC socket is always plain, and the monitor would cost a one-shot publish ~0.5 ms.
   */
  private watchHandshake(sock: Dealer, curve: boolean): void {
    if (!curve && this.opts.endpoint.startsWith("ipc://")) return;
    const events = retryInterrupted(() => sock.events);
    if (curve) events.on("handshake:error:auth", () => this.fail(sock, "refused"));
    events.on("handshake:error:protocol", (e) => {
      if (e.error.code !== "ERR_ZMTP_MECHANISM_MISMATCH") return;
      this.troubleAt.mismatch = Date.now();
      this.fail(sock, "mismatch");
    });
    events.on("handshake:error:other", () => {
      this.troubleAt.closed = Date.now();
    });
    events.on("handshake", () => {
      this.troubleAt.mismatch = 0;
      this.troubleAt.closed = 0;
    });
  }

  private fail(sock: Dealer, why: Handshake): void {
    this.failed.add(sock);
    for (const [id, p] of this.pending)
      if (p.sock === sock) {
        this.pending.delete(id);
        p.resolve(why);
      }
  }

  private async readLoop(sock: Dealer): Promise<void> {
    try {
      for await (const frames of sock) {
        let decoded: ReturnType<typeof decodeReply>;
        try {
          decoded = decodeReply(frames);
        } catch {
          continue; // not ours to answer; garbage
        }
        // A late reply on a retired socket answers the same request (same frames) as its retry: take it.
        const p = this.pending.get(decoded.requestId);
        if (p) {
          this.pending.delete(decoded.requestId);
          p.resolve(decoded.reply);
          if (p.sock !== this.sock) this.closeIfIdle(p.sock);
        }
        if (sock !== this.sock) this.closeIfIdle(sock);
      }
    } catch {
      // socket closed by closeIfIdle/close
    }
  }

  /** New tries go on a fresh socket; this one stays open until the tries still waiting on it end. */
  private retire(sock: Dealer): void {
    if (this.sock === sock) {
      this.sock = undefined;
      this.sendChain = Promise.resolve();
    }
    this.closeIfIdle(sock);
  }

  /** Close a retired socket nobody waits on (a scan of the pending tries: only on timeouts and late replies). */
  private closeIfIdle(sock: Dealer): void {
    if (sock === this.sock || sock.closed) return;
    for (const p of this.pending.values()) if (p.sock === sock) return;
    sock.close();
  }

  /**
   * Why the broker's IPC socket cannot be reached from here, if it cannot: no socket file (a stopped broker:
   * NO_BROKER at once), or this user may not reach it (permission denied: waiting out the tries would end
   * in a TIMEOUT that blames the broker). A socket seen reachable is trusted for a second: a check per
   * request was 5% of a one-at-a-time publisher's CPU.
   */
  private ipcUnreachable(fresh = false): HeraldError | undefined {
    const endpoint = this.opts.endpoint;
    if (!endpoint.startsWith("ipc://")) return undefined;
    const now = Date.now();
    if (!fresh && now < this.ipcSeenUntil) return undefined;
    const problem = ipcSocketProblem(endpoint.slice(6));
    if (problem === "missing")
      return new ConnectionError("NO_BROKER", `no broker at ${this.endpoint}: start \`herald serve\``, {
        retryable: true,
        details: { endpoint: this.endpoint },
      });
    if (problem !== undefined)
      return new SecurityError("SECURITY", `cannot reach the broker at ${this.endpoint}: ${problem}`, {
        details: { endpoint: this.endpoint },
      });
    this.ipcSeenUntil = now + 1000;
    return undefined;
  }

  private refusedError(): SecurityError {
    const id = this.opts.curve!.identity;
    return new SecurityError(
      "SECURITY",
      `the broker at ${this.endpoint} refused our CURVE key ${id.keyId}: add ${id.name}.pub to the broker's trust directory ('herald keys trust ${id.name}.pub' there); it takes effect within its reload interval, no restart`,
      {
        retryable: true,
        details: { endpoint: this.endpoint, keyId: id.keyId, tries: this.opts.retries + 1 },
      },
    );
  }

  /** CURVE on one side only: libzmq says "mechanism mismatch" on both, which names neither the side nor the fix. */
  private mismatchError(): SecurityError {
    const side = this.opts.curve ? "does not use CURVE on this endpoint" : "requires CURVE";
    return new SecurityError("SECURITY", `the broker at ${this.endpoint} ${side}: ${this.curveFix()}`, {
      retryable: true,
      details: {
        endpoint: this.endpoint,
        curve: this.opts.curve !== undefined,
        tries: this.opts.retries + 1,
      },
    });
  }

  private noAnswer(closed = false): HeraldError {
    const tries = this.opts.retries + 1;
    const unreachable = this.ipcUnreachable(true);
    if (unreachable !== undefined) return unreachable;
    const check = closed ? this.closedHint() : "check that `herald serve` is running (`herald status`)";
    return new ConnectionError(
      "TIMEOUT",
      `no answer from the broker at ${this.endpoint} after ${tries} tries of ${this.opts.timeoutMs} ms: ` +
        `${check}; retrying with the same ids is safe${this.curveHint()}`,
      { retryable: true, details: { endpoint: this.endpoint, tries } },
    );
  }

  /** The broker runs (it took the connection) but its handshake failed: what does that (see Trouble). */
  private closedHint(): string {
    const does = this.opts.curve
      ? "when its CURVE key is not the server key we use, or when it does not use CURVE there"
      : `when it requires CURVE: ${this.curveFix()}`;
    return (
      "something listens there but closed the connection during the ZeroMQ handshake (is it a herald " +
      `broker, and not restarting?); a broker does that ${does}`
    );
  }

  /** What to change when the broker's CURVE setting for this endpoint is not ours. */
  private curveFix(): string {
    return this.opts.curve
      ? "turn security.curve off for it (a forward sink: remove its serverKey), or enable CURVE on the " +
          "broker (security.curve: true with security.identity)"
      : "set security.curve and the server key (security.serverKey; a forward sink: sinks[].serverKey; in " +
          "code, HeraldClient's curve option)";
  }

  /** A CURVE handshake with the wrong server key fails without a word from libzmq: it looks like silence. */
  private curveHint(): string {
    const curve = this.opts.curve;
    if (!curve) return "";
    const own = curve.serverKey === curve.identity.curvePublic;
    return (
      `; over CURVE a wrong server key looks the same: ${curve.serverKey.slice(0, 8)}... must be the broker's ` +
      "public key (security.serverKey, `herald keys show NAME` on the broker)" +
      (own
        ? `, and it is ${curve.identity.name}'s own key, right only when you run as the broker's identity`
        : "")
    );
  }
}

/**
 * Whether this user can connect to the socket file at `path`: "missing", a sentence naming what denies
 * it (the directory whose mode or group keeps this user out, or the socket file itself: connecting
 * needs write permission on it), or undefined when nothing stands in the way (or the check cannot tell).
 */
function ipcSocketProblem(path: string): string | undefined {
  try {
    accessSync(path, constants.W_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return "missing";
    if (code !== "EACCES" && code !== "EPERM") return undefined;
  }
  const who = `this user (uid ${process.getuid?.() ?? "?"})`;
  const see = 'see docs/security.md, "IPC sockets and file permissions"';
  const dir = closedDirectory(dirname(resolve(path)));
  if (dir !== undefined)
    return (
      `permission denied on the directory ${dir} (${describe(dir)}): ${who} may not enter it. Fix: add this ` +
      `user to the broker's group (the group of paths.runtimeDir, which herald serve makes 0750), or publish as ` +
      `a user in it; ${see}`
    );
  return (
    `permission denied on the socket ${path} (${describe(path)}): connecting needs write permission on it. ` +
    `Fix: add ${who} to the socket's group (herald serve makes it group-writable when its directory is ` +
    `closed to others, as a 0750 paths.runtimeDir is); ${see}`
  );
}

/** The first directory from the root down to `dir` this user may not enter, if any. */
function closedDirectory(dir: string): string | undefined {
  const parts = dir.split("/").filter((p) => p !== "");
  for (let i = 1; i <= parts.length; i++) {
    const d = `/${parts.slice(0, i).join("/")}`;
    try {
      accessSync(d, constants.X_OK);
    } catch {
      return d;
    }
  }
  return undefined;
}

/** "mode 750, owner uid 998, group herald": what an admin needs to grant access. */
function describe(path: string): string {
  try {
    const st = statSync(path);
    return `mode ${(st.mode & 0o777).toString(8)}, owner uid ${st.uid}, group ${groupName(st.gid)}`;
  } catch {
    return "its mode cannot be read from here";
  }
}

function groupName(gid: number): string {
  try {
    const line = readFileSync("/etc/group", "utf8")
      .split("\n")
      .find((l) => l.split(":")[2] === String(gid));
    const name = line?.split(":")[0];
    return name ? `${name} (gid ${gid})` : `gid ${gid}`;
  } catch {
    return `gid ${gid}`;
  }
}
