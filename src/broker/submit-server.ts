import { chmodSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { Router } from "zeromq";
import { HeraldError, rejected, toHeraldError } from "../errors.js";
import { ipcInUse, type OwnSocketFile, ownSocketFile, removeOwnSocketFile } from "../util/ipc-file.js";
import { type Logger, rateLimitedLogger } from "../util/log.js";
import { retryInterrupted } from "../util/zeromq.js";
import { amqpHeaderProblem } from "../wire/amqp-headers.js";
import { inCanonicalOrder } from "../wire/json.js";
import { isoNow, type Message, validateMessage } from "../wire/message.js";
import {
  type DecodedCommand,
  type DecodedRequest,
  decodeRequest,
  encodeReply,
  errorReply,
  type Frame,
  type SubmitReply,
  type SubmitResult,
  type SubmittedInput,
} from "../wire/submit.js";
import type { SubmitPeer } from "./broker.js";

/** What the submit server needs from the broker: store (group commit) and answer control commands. */
export interface SubmitHandler {
  accept(messages: Message[], peer: SubmitPeer): Promise<SubmitResult[]>;
  command(name: string, args: Record<string, unknown>): Promise<unknown>;
  readonly maxBatch: number;
  readonly maxBodyBytes: number;
}

export interface SubmitServerOptions {
  endpoints: string[];
  maxRequestBytes: number;
  log: Logger;
  /** Extra socket options for every endpoint. */
  socketOptions?: Record<string, unknown>;
  /** Per-endpoint extra options (CURVE server keys and zapDomain on tcp:// only). */
  socketOptionsFor?: (endpoint: string) => Record<string, unknown> | undefined;
}

/**
 * Reading stops while this many requests, or request bytes, are being handled (read, not yet answered):
 * libzmq's receive queue then fills and pushes back on the senders. Without it, one client pipelining
 * requests faster than the outbox commits made the broker read them all into memory (1,200 pipelined
 * 500 KiB requests: peak RSS 2.4 GB, 1.6 GB with the cap). 1,000 requests is a large group commit of
 * single-message requests from many clients, 64 MiB one of 64 maximal (1 MiB body) messages: that flood
 * ran no slower with the cap.
 */
const MAX_IN_FLIGHT_REQUESTS = 1000;
const MAX_IN_FLIGHT_BYTES = 64 << 20;

/**
 * Replies queued per connection (ROUTER send high-water mark). With 100,000 a client that never reads
 * pinned that many replies each (10 such clients: +430 MB). Past the mark a connection's replies are
 * dropped: HeraldClient then times out and sends the request again with the same ids, which the dedup
 * answers (`duplicate: true`) without storing twice. 10,000 is far more than a reading client has
 * outstanding (HeraldClient coalesces its callers into few requests), so only a stalled one loses any.
 */
const REPLY_HWM = 10_000;

/**
 * Requests libzmq queues per connection before the broker reads them (ROUTER receive high-water mark).
 * While reading is paused at the in-flight cap, libzmq went on taking requests off the connection into
 * its own queue, 1,000 per connection by default, beyond the broker's count: one client pipelining
 * 1,200 requests of 500 KiB against a stalled store grew the broker by 505 MB, 100 MB with 32 (probe in
 * the commit). Past the mark the client's own queue holds the rest and its sends wait, which is the
 * push-back the cap means to give. A reading broker empties this queue at once, so no well-behaved
 * client (HeraldClient keeps a few requests in flight) waits on it.
 */
const REQUEST_HWM = 32;

/**
 * The broker's ROUTER socket(s). One reader loop per socket; requests are handled without awaiting in
 * the loop, so every request already queued is read before the outbox commits (group commit happens
 * on setImmediate). Replies go through one writer queue: zeromq.js allows one pending send per socket.
 */
export class SubmitServer {
  private readonly sockets: Router[] = [];
  private readonly writers: ReplyWriter[] = [];
  private readonly socketFiles: OwnSocketFile[] = [];
  /** Bound sockets whose read loops have not started yet (see bind / startReading). */
  private readonly unread: Array<{ sock: Router; writer: ReplyWriter; endpoint: string }> = [];
  /** Set once submissions are refused: every request from then on is answered with this error. */
  private refusal: HeraldError | undefined;
  /** Requests read and not yet answered (storing, or a command running), and their bytes. */
  private inFlight = 0;
  private inFlightBytes = 0;
  /** Read loops paused at the in-flight cap, resumed as requests are answered. */
  private paused: Array<() => void> = [];
  /** `paused`: times reading stopped at the in-flight cap (MAX_IN_FLIGHT_*). */
  readonly counters = { requests: 0, badRequests: 0, messages: 0, rejected: 0, paused: 0 };

  constructor(
    private readonly handler: SubmitHandler,
    private readonly opts: SubmitServerOptions,
  ) {}

  /** Bind every endpoint and start reading them: for a handler that accepts from the first request on. */
  async start(): Promise<string[]> {
    const bound = await this.bind();
    this.startReading();
    return bound;
  }

  /**
   * Bind every endpoint without reading any: a request that arrives meanwhile (a client retrying across
   * a restart) waits in ZeroMQ's queue until startReading(), instead of being answered by a broker that
   * does not accept yet.
   */
  async bind(): Promise<string[]> {
    const bound: string[] = [];
    for (const endpoint of this.opts.endpoints) {
      if (await ipcInUse(endpoint))
        throw new HeraldError(
          "TRANSPORT",
          `cannot listen on ${endpoint}: another herald serve is listening there; stop it, or give this one another paths.runtimeDir (or broker.submit)`,
        );
      const sock = new Router({
        linger: 0,
        maxMessageSize: this.opts.maxRequestBytes,
        sendHighWaterMark: REPLY_HWM,
        receiveHighWaterMark: REQUEST_HWM,
        ...this.opts.socketOptions,
        ...this.opts.socketOptionsFor?.(endpoint),
      });
      try {
        await sock.bind(endpoint);
      } catch (err) {
        sock.close();
        throw bindError(endpoint, err);
      }
      this.sockets.push(sock);
      logMechanismMismatch(sock, sock.lastEndpoint ?? endpoint, this.opts.log);
      const file = ownSocketFile(sock.lastEndpoint ?? endpoint);
      if (file) {
        this.socketFiles.push(file);
        groupMaySubmit(file.path);
      }
      const writer = new ReplyWriter(sock, this.opts.log);
      this.writers.push(writer);
      this.unread.push({ sock, writer, endpoint });
      bound.push(sock.lastEndpoint ?? endpoint);
    }
    return bound;
  }

  /** Start answering on every bound endpoint (the broker accepts from now on). */
  startReading(): void {
    for (const { sock, writer, endpoint } of this.unread.splice(0))
      void this.readLoop(sock, writer, endpoint);
  }

  /**
   * Stop taking messages: from now on every request is answered with `reason`, SHUTTING_DOWN without one.
   * A fail-stop's own error (STORAGE_ERROR: what failed, and the fix) replaces a SHUTTING_DOWN given before,
   * so a client is not told to retry in a moment a broker that is exiting for good.
   */
  stopAccepting(reason?: HeraldError): void {
    if (reason !== undefined && (this.refusal === undefined || this.refusal.code === "SHUTTING_DOWN"))
      this.refusal = reason;
    this.refusal ??= rejected("SHUTTING_DOWN", "broker is shutting down: retry in a moment (same ids)");
  }

  /** Wait (bounded) for requests being stored to be answered. */
  async settle(deadline: number): Promise<void> {
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await Promise.all(this.writers.map((w) => w.flush(deadline)));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.close();
    this.sockets.length = 0;
    for (const f of this.socketFiles.splice(0)) removeOwnSocketFile(f);
    this.resumeReading(); // a paused loop then finds its socket closed and ends
  }

  private async readLoop(sock: Router, writer: ReplyWriter, endpoint: string): Promise<void> {
    try {
      for await (const frames of sock) {
        this.onRequest(frames, writer, endpoint);
        if (this.overCap()) await this.belowCap();
      }
    } catch (err) {
      if (!sock.closed) this.opts.log.error("submit socket failed", { err });
    }
  }

  private overCap(): boolean {
    return this.inFlight >= MAX_IN_FLIGHT_REQUESTS || this.inFlightBytes >= MAX_IN_FLIGHT_BYTES;
  }

  private belowCap(): Promise<void> {
    this.counters.paused++;
    return new Promise((resolve) => this.paused.push(resolve));
  }

  private resumeReading(): void {
    for (const resume of this.paused.splice(0)) resume();
  }

  /** Count a request in until its reply is queued: reading pauses while too much is in flight. */
  private track(bytes: number, work: Promise<unknown>): void {
    this.inFlight++;
    this.inFlightBytes += bytes;
    void work.finally(() => {
      this.inFlight--;
      this.inFlightBytes -= bytes;
      if (!this.overCap()) this.resumeReading();
    });
  }

  private onRequest(frames: Buffer[], writer: ReplyWriter, endpoint: string): void {
    this.counters.requests++;
    const routing = frames[0]!;
    // A REQ peer puts an empty delimiter after its routing id; mirror it so REQ sockets work too.
    const reqStyle = frames.length > 1 && frames[1]!.length === 0;
    const envelope = reqStyle ? [routing, Buffer.alloc(0)] : [routing];
    const body = frames.slice(envelope.length);
    const reply: Reply = (requestId, r) => writer.push([...envelope, ...encodeReply(requestId, r)]);
    let decoded: DecodedRequest | DecodedCommand;
    try {
      decoded = this.decode(body);
    } catch (err) {
      this.counters.badRequests++;
      const requestId = body[1] && body[1].length <= 64 ? body[1] : Buffer.alloc(0);
      reply(requestId, errorReply(toHeraldError(err, "BAD_REQUEST")));
      return;
    }
    const bytes = frames.reduce((n, f) => n + f.length, 0);
    if ("command" in decoded) {
      this.track(bytes, this.runCommand(decoded, reply));
      return;
    }
    // The raw routing id goes to admission only (a CURVE client's is a bearer token): never logged.
    const work = this.handle(decoded, { routingId: routing, endpoint })
      .then((r) => reply(decoded.requestId, r))
      .catch((err) => reply(decoded.requestId, errorReply(toHeraldError(err, "STORAGE_ERROR"))));
    this.track(bytes, work);
  }

  private decode(body: Buffer[]): DecodedRequest | DecodedCommand {
    try {
      return decodeRequest(body, this.handler.maxBatch);
    } catch (err) {
      const details = err instanceof HeraldError ? err.details : {};
      throw new HeraldError("BAD_REQUEST", (err as Error).message, { cause: err, details });
    }
  }

  private async handle(req: DecodedRequest, peer: SubmitPeer): Promise<SubmitReply> {
    if (this.refusal !== undefined) return errorReply(this.refusal);
    const results: SubmitResult[] = new Array(req.messages.length);
    const valid: Message[] = [];
    const slots: number[] = [];
    req.messages.forEach((m, i) => {
      if (!m.ok) {
        results[i] = { ok: false, id: m.id, error: { code: "INVALID", message: m.problem } };
        return;
      }
      try {
        valid.push(this.toMessage(m.input, req.payloadBytes));
        slots.push(i);
      } catch (err) {
        const e = toHeraldError(err, "INVALID");
        results[i] = { ok: false, id: m.input.id, error: { code: e.code, message: e.message } };
      }
    });
    this.counters.messages += req.messages.length;
    if (valid.length > 0) {
      const stored = await this.handler.accept(valid, peer);
      stored.forEach((r, k) => {
        results[slots[k]!] = r;
      });
    }
    this.counters.rejected += results.filter((r) => !r.ok).length;
    return { results };
  }

  private toMessage(input: SubmittedInput, sourceBytes: number): Message {
    return storedMessage(input, this.handler.maxBodyBytes, sourceBytes);
  }

  private runCommand(cmd: DecodedCommand, reply: Reply): Promise<void> {
    return this.handler
      .command(cmd.command, cmd.args)
      .then((result) => reply(cmd.requestId, { result } as unknown as SubmitReply))
      .catch((err) => reply(cmd.requestId, errorReply(toHeraldError(err))));
  }
}

type Reply = (requestId: Buffer, r: SubmitReply) => void;

/**
 * The message the broker stores for a submitted one: defaults filled in, body in canonical order,
 * validated (throws MessageRejectedError). Every way into the broker goes through here (the submit
 * socket, LocalSubmitter). `sourceBytes`: the size of the JSON it was parsed from, which bounds its body
 * (see validateMessage); undefined when it was not parsed here.
 */
export function storedMessage(input: SubmittedInput, maxBodyBytes: number, sourceBytes?: number): Message {
  const msg: Message = {
    id: input.id,
    topic: input.topic,
    sentAt: input.sentAt ?? isoNow(),
    schema: input.schema ?? "base.message",
    schemaVersion: input.schemaVersion ?? 1,
    headers: input.headers ?? {},
    // Sorted once here so that storing and publishing it in each wire format sorts nothing.
    body: inCanonicalOrder(input.body),
    // As given (validateMessage checks each field's type): coercing would store {} as "[object Object]".
    origin: {
      host: input.origin?.host ?? "unknown",
      app: input.origin?.app ?? "unknown",
      pid: input.origin?.pid ?? 0,
      ...(input.origin?.user !== undefined ? { user: input.origin.user } : {}),
    },
  };
  if (input.via && input.via.length > 0) msg.via = input.via;
  validateMessage(msg, maxBodyBytes, sourceBytes === undefined ? {} : { sourceBytes });
  // Every message may go to AMQP (a sink added later reads the backlog): refuse what amqplib cannot write.
  const headerProblem = amqpHeaderProblem(msg);
  if (headerProblem) throw headerProblem;
  return msg;
}

/**
 * A client whose CURVE setting differs from this endpoint's fails its handshake before it can send a
 * request: without this line the broker shows nothing while the client sees only that nobody answers.
 * Clients retry on new sockets (a forward sink for as long as it holds messages): one line a minute.
 * libzmq's event names our endpoint, not the peer.
 */
function logMechanismMismatch(sock: Router, endpoint: string, log: Logger): void {
  const curve = sock.curveServer;
  const limited = rateLimitedLogger(log, { burst: 1 });
  retryInterrupted(() => sock.events).on("handshake:error:protocol", (e) => {
    if (e.error.code !== "ERR_ZMTP_MECHANISM_MISMATCH") return;
    limited.warn(
      curve
        ? "a client without CURVE tried this CURVE endpoint: it must set security.curve and security.serverKey (a forward sink: its serverKey)"
        : "a CURVE client tried this plain endpoint: turn CURVE off in that client (a forward sink: remove its serverKey), or enable security.curve here",
      { endpoint },
    );
  });
}

function bindError(endpoint: string, err: unknown): HeraldError {
  const code = (err as { code?: string }).code;
  const hint =
    code === "EADDRINUSE"
      ? "another process (another herald serve?) listens there: stop it or change broker.submit"
      : "check the path or address and its permissions";
  return new HeraldError("TRANSPORT", `cannot listen on ${endpoint}: ${(err as Error).message}; ${hint}`, {
    cause: err,
  });
}

/** One writer per socket: queues replies and sends them one at a time. */
class ReplyWriter {
  private readonly queue: Frame[][] = [];
  private running = false;

  constructor(
    private readonly sock: Router,
    private readonly log: Logger,
  ) {}

  push(frames: Frame[]): void {
    this.queue.push(frames);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0 && !this.sock.closed) {
      const frames = this.queue.shift()!;
      try {
        await this.sock.send(frames);
      } catch (err) {
        this.log.debug("reply dropped", { err });
      }
    }
    this.running = false;
  }

  async flush(deadline: number): Promise<void> {
    while ((this.running || this.queue.length > 0) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Connecting to a Unix socket needs write permission on it, and libzmq creates it with the process umask
 * (0755 under the usual 022): the local publishers of the broker's group, which docs/security.md lets in
 * through the 0750 runtime directory, could enter it and still not connect. Where that directory is the
 * barrier (closed to others), the socket is made owner and group read-write; in a directory others may
 * enter (a shared /tmp, or one herald could not chmod) it keeps its mode, which is then the barrier.
 */
function groupMaySubmit(path: string): void {
  try {
    if ((statSync(dirname(path)).mode & 0o007) !== 0) return;
    chmodSync(path, 0o660);
  } catch {
    // Not ours to change (another owner): the directory decides who reaches it either way.
  }
}
