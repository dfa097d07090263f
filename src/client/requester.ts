import { existsSync } from "node:fs";
import type { Dealer } from "zeromq";
import { ClosedError, ConnectionError, SecurityError, TransportError } from "../errors.js";
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
  resolve: (r: SubmitReply | typeof REFUSED) => void;
  reject: (e: Error) => void;
}

/** A try ended because the broker's ZAP handler refused our CURVE key (libzmq will not retry that socket). */
const REFUSED = Symbol("refused");

/**
 * Request/reply with the broker, Lazy Pirate style. Any number of concurrent requests share one DEALER
 * socket (replies are matched by request id). A try that times out is sent again with the SAME frames
 * on a fresh socket, so the broker's dedup window makes retries safe. The socket it timed out on is
 * retired, not closed: other requests still waiting on it get their replies (a slow reply to one
 * request says nothing about theirs), and it is closed once none is left.
 */
export class Requester {
  private sock: Dealer | undefined;
  /** Sockets whose CURVE handshake the broker refused: dead for good, replaced on next use. */
  private readonly refused = new WeakSet<Dealer>();
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
    if (this.ipcMissing()) throw this.noAnswer();
    let refused = false;
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      const sock = this.socket();
      const reply = await this.tryOnce(sock, requestId, frames);
      if (reply !== undefined && reply !== REFUSED) return reply;
      // Lazy Pirate: a socket that timed out may be wedged on a dead peer; the next try (same ids) goes
      // on a fresh one. A refused CURVE handshake is never retried by libzmq: only a new socket tries again.
      this.retire(sock);
      refused = reply === REFUSED;
      if (refused && attempt < this.opts.retries) await sleep(backoffDelay(attempt, 100, 2000));
      if (this.closed) throw new ClosedError("herald client");
    }
    throw refused ? this.refusedError() : this.noAnswer();
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
  ): Promise<SubmitReply | undefined | typeof REFUSED> {
    return new Promise<SubmitReply | undefined | typeof REFUSED>((resolve, reject) => {
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
    if (this.sock && !this.sock.closed && !this.refused.has(this.sock)) return this.sock;
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
      if (curve) retryInterrupted(() => sock.events).on("handshake:error:auth", () => this.refuse(sock));
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

  /** The broker's ZAP handler said no: fail this socket's tries now instead of waiting for timeouts. */
  private refuse(sock: Dealer): void {
    this.refused.add(sock);
    for (const [id, p] of this.pending)
      if (p.sock === sock) {
        this.pending.delete(id);
        p.resolve(REFUSED);
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
   * Whether the broker's IPC socket file is absent (a stopped broker: fail fast with NO_BROKER). A file
   * seen present is trusted for a second: a stat per request was 5% of a one-at-a-time publisher's CPU.
   */
  private ipcMissing(fresh = false): boolean {
    const endpoint = this.opts.endpoint;
    if (!endpoint.startsWith("ipc://")) return false;
    const now = Date.now();
    if (!fresh && now < this.ipcSeenUntil) return false;
    if (!existsSync(endpoint.slice(6))) return true;
    this.ipcSeenUntil = now + 1000;
    return false;
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

  private noAnswer(): ConnectionError {
    const tries = this.opts.retries + 1;
    if (this.ipcMissing(true)) {
      return new ConnectionError("NO_BROKER", `no broker at ${this.endpoint}: start \`herald serve\``, {
        retryable: true,
        details: { endpoint: this.endpoint },
      });
    }
    return new ConnectionError(
      "TIMEOUT",
      `no answer from the broker at ${this.endpoint} after ${tries} tries of ${this.opts.timeoutMs} ms: ` +
        "check that `herald serve` is running (`herald status`); retrying with the same ids is safe" +
        this.curveHint(),
      { retryable: true, details: { endpoint: this.endpoint, tries } },
    );
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
