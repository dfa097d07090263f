import { existsSync } from "node:fs";
import type { Dealer } from "zeromq";
import {
  ClosedError,
  ConnectionError,
  errorFromWire,
  type HeraldError,
  ProtocolError,
  SecurityError,
  TransportError,
  toHeraldError,
} from "../errors.js";
import type { Identity } from "../security/keys.js";
import { signMessage } from "../security/sign.js";
import { curveDealerOptions } from "../security/zap.js";
import { backoffDelay, sleep } from "../util/backoff.js";
import { retryInterrupted, zmq } from "../util/zeromq.js";
import type { JsonObject } from "../wire/json.js";
import {
  createMessage,
  DEFAULT_MAX_BODY_BYTES,
  type Message,
  type MessageInput,
  randomChunk,
} from "../wire/message.js";
import {
  decodeReply,
  encodeCommand,
  encodeSubmitParts,
  type Frame,
  type SubmitReply,
  type SubmitResult,
} from "../wire/submit.js";
import { Coalescer } from "./coalesce.js";

export interface ClientOptions {
  /** Submit endpoint, e.g. `ipc:///run/herald/submit.sock` or `tcp://broker:9939`. Default: from configuration. */
  endpoint?: string;
  /** Per-try timeout (ms); default 2500. */
  timeoutMs?: number;
  /** Tries after the first; default 3 (Lazy Pirate: same ids every time). */
  retries?: number;
  maxBodyBytes?: number;
  /** Messages per request for publishBatch; default 1000 (the broker's default maxBatch). */
  maxBatch?: number;
  /** Extra Dealer socket options. */
  socketOptions?: Record<string, unknown>;
  /**
   * CURVE to a broker's tcp:// submit endpoint: our identity and the broker's CURVE public key (Z85).
   * Each socket gets a fresh signed routing id, from which the broker learns who we are.
   */
  curve?: { identity: Identity; serverKey: string };
  /** Sign every message built by publish/publishMany/publishBatch with this identity (once per message). */
  sign?: Identity;
}

/** The broker's acknowledgement: the message is durably stored. */
export interface Ack {
  id: string;
  /** Position in the broker's outbox. */
  seq: number;
  acceptedAt: string;
  /** True when the broker already had this id (a retry): stored and published once. */
  duplicate: boolean;
}

export type PublishOptions = Omit<MessageInput, "topic" | "body">;

interface Pending {
  sock: Dealer;
  resolve: (r: SubmitReply | typeof REFUSED) => void;
  reject: (e: Error) => void;
}

/** A try ended because the broker's ZAP handler refused our CURVE key (libzmq will not retry that socket). */
const REFUSED = Symbol("refused");

/**
 * Publishes to the local herald broker. Connects lazily; any number of concurrent callers share one
 * DEALER socket (requests are matched by id). A request that times out is sent again with the SAME
 * message ids on a fresh socket, so the broker's dedup window makes retries safe.
 */
export class HeraldClient {
  private sock: Dealer | undefined;
  /** Sockets whose CURVE handshake the broker refused: dead for good, replaced on next use. */
  private readonly refused = new WeakSet<Dealer>();
  private readonly pending = new Map<string, Pending>();
  private sendChain: Promise<unknown> = Promise.resolve();
  private readonly coalescer: Coalescer<Ack | HeraldError>;
  /** Request ids: unique per client (replies are matched within it), random prefix so logs tell clients apart. */
  private readonly requestPrefix = `${randomChunk(6).toString("hex")}-`;
  private requests = 0;
  private ipcSeenUntil = 0;
  private closed = false;
  private readonly timeoutMs: number;
  private readonly retries: number;
  readonly endpoint: string;

  constructor(private readonly opts: ClientOptions & { endpoint: string }) {
    this.endpoint = opts.endpoint;
    this.timeoutMs = opts.timeoutMs ?? 2500;
    this.retries = opts.retries ?? 3;
    this.coalescer = new Coalescer((parts) => this.sendParts(parts), opts.maxBatch ?? 1000);
  }

  /** Publish one message; resolves with the broker's acknowledgement or throws a typed HeraldError. */
  async publish(topic: string, body: JsonObject, options: PublishOptions = {}): Promise<Ack> {
    const [result] = await this.publishMany([{ ...options, topic, body }]);
    const r = result!;
    if (r instanceof Error) throw r;
    return r;
  }

  /** Publish many; every message's outcome is returned in order (an Ack or a HeraldError), nothing thrown per message. */
  async publishMany(inputs: readonly MessageInput[]): Promise<Array<Ack | HeraldError>> {
    const maxBody = this.opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    const sign = this.opts.sign;
    const out: Array<Ack | HeraldError> = new Array(inputs.length);
    const messages: Message[] = [];
    const slots: number[] = [];
    inputs.forEach((input, i) => {
      try {
        const m = createMessage(input, maxBody);
        // Signed once here: every retry resends the same bytes, so the broker's dedup sees one message.
        messages.push(sign ? signMessage(m, sign) : m);
        slots.push(i);
      } catch (err) {
        out[i] = toHeraldError(err, "INVALID"); // this one is refused; the others still go
      }
    });
    if (messages.length === 0) return out;
    const results = await this.submit(messages);
    results.forEach((r, k) => {
      out[slots[k]!] = r;
    });
    return out;
  }

  /** Like publishMany but throws the first error (after all were tried). */
  async publishBatch(inputs: readonly MessageInput[]): Promise<Ack[]> {
    const results = await this.publishMany(inputs);
    const err = results.find((r): r is HeraldError => r instanceof Error);
    if (err) throw err;
    return results as Ack[];
  }

  /**
   * Submit already-built messages as they are, signed or not (forwarding, replay, the shim). Submits made
   * by concurrent callers in the same tick share requests (see Coalescer); more than maxBatch messages go
   * in consecutive requests of their own.
   */
  async submit(messages: readonly Message[]): Promise<Array<Ack | HeraldError>> {
    if (this.coalescer.fits(messages.length)) return this.coalescer.add(messages);
    const chunk = this.opts.maxBatch ?? 1000;
    const out: Array<Ack | HeraldError> = [];
    for (let i = 0; i < messages.length; i += chunk)
      out.push(...(await this.coalescer.add(messages.slice(i, i + chunk))));
    return out;
  }

  private async sendParts(parts: string[]): Promise<Array<Ack | HeraldError>> {
    return outcomes(await this.request((rid) => encodeSubmitParts(rid, parts)), parts.length);
  }

  /** Ask the broker for its status (outbox depth, sinks' lag and errors). */
  async status(): Promise<unknown> {
    return this.command("status");
  }

  async command(name: string, args: Record<string, unknown> = {}): Promise<unknown> {
    const reply = await this.request((rid) => encodeCommand(rid, name, args));
    if ("error" in reply) throw errorFromWire(reply.error);
    if ("result" in reply) return reply.result;
    throw new ProtocolError("broker answered a command with submit results");
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sock?.close();
    this.sock = undefined;
    for (const p of this.pending.values()) p.reject(new ClosedError("herald client"));
    this.pending.clear();
  }

  private async request(build: (requestId: string) => Frame[]): Promise<SubmitReply> {
    if (this.closed) throw new ClosedError("herald client");
    const requestId = `${this.requestPrefix}${(++this.requests).toString(36)}`;
    const frames = build(requestId);
    if (this.ipcMissing()) throw this.noAnswer();
    let refused = false;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      const reply = await this.tryOnce(requestId, frames);
      if (reply !== undefined && reply !== REFUSED) return reply;
      // Lazy Pirate: a socket that timed out may be wedged on a dead peer; start afresh, same ids.
      // A refused CURVE handshake is never retried by libzmq: only a new socket tries again.
      this.resetSocket();
      refused = reply === REFUSED;
      if (refused && attempt < this.retries) await sleep(backoffDelay(attempt, 100, 2000));
      if (this.closed) throw new ClosedError("herald client");
    }
    throw refused ? this.refusedError() : this.noAnswer();
  }

  private tryOnce(requestId: string, frames: Frame[]): Promise<SubmitReply | undefined | typeof REFUSED> {
    const sock = this.socket();
    return new Promise<SubmitReply | undefined | typeof REFUSED>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
        resolve(undefined);
      }, this.timeoutMs);
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
    if (this.sock) this.resetSocket();
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
      retryInterrupted(() => sock.connect(this.endpoint));
    } catch (err) {
      sock.close();
      // Not translateZmqError: transport/zeromq-common loads node:crypto, which a one-shot publish avoids.
      throw new TransportError(
        "TRANSPORT",
        `cannot connect to '${this.endpoint}': ${(err as Error).message}; write tcp://host:port or ipc:///path/to/submit.sock`,
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
          continue; // not ours to answer; a late reply to a reset socket or garbage
        }
        const p = this.pending.get(decoded.requestId);
        if (p) {
          this.pending.delete(decoded.requestId);
          p.resolve(decoded.reply);
        }
      }
    } catch {
      // socket closed by resetSocket/close
    }
  }

  private resetSocket(): void {
    this.sock?.close();
    this.sock = undefined;
    this.sendChain = Promise.resolve();
  }

  /**
   * Whether the broker's IPC socket file is absent (a stopped broker: fail fast with NO_BROKER). A file
   * seen present is trusted for a second: a stat per request was 5% of a one-at-a-time publisher's CPU.
   */
  private ipcMissing(fresh = false): boolean {
    if (!this.endpoint.startsWith("ipc://")) return false;
    const now = Date.now();
    if (!fresh && now < this.ipcSeenUntil) return false;
    if (!existsSync(this.endpoint.slice(6))) return true;
    this.ipcSeenUntil = now + 1000;
    return false;
  }

  private refusedError(): SecurityError {
    const id = this.opts.curve!.identity;
    return new SecurityError(
      "SECURITY",
      `the broker at ${this.endpoint} refused our CURVE key ${id.keyId}: add ${id.name}.pub to the broker's trust directory ('herald keys trust ${id.name}.pub' there); it takes effect within its reload interval, no restart`,
      { retryable: true, details: { endpoint: this.endpoint, keyId: id.keyId, tries: this.retries + 1 } },
    );
  }

  private noAnswer(): ConnectionError {
    const tries = this.retries + 1;
    if (this.ipcMissing(true)) {
      return new ConnectionError("NO_BROKER", `no broker at ${this.endpoint}: start \`herald serve\``, {
        retryable: true,
        details: { endpoint: this.endpoint },
      });
    }
    return new ConnectionError(
      "TIMEOUT",
      `no answer from the broker at ${this.endpoint} after ${tries} tries of ${this.timeoutMs} ms: ` +
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

/** One outcome per message of a submit request: its result, or the request's error for every message. */
function outcomes(reply: SubmitReply, count: number): Array<Ack | HeraldError> {
  if ("error" in reply) return new Array<HeraldError>(count).fill(errorFromWire(reply.error));
  if ("results" in reply) return reply.results.map(toOutcome);
  throw new ProtocolError("broker answered a submit with a command result");
}

/** What a caller sees of one submit result: an Ack, or the typed error. */
export function toOutcome(r: SubmitResult): Ack | HeraldError {
  if (r.ok) return { id: r.id, seq: r.seq, acceptedAt: r.accepted_at, duplicate: r.duplicate };
  return errorFromWire({ ...r.error, details: { id: r.id } });
}
