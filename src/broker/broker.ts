import { chmodSync, mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { BrokerUnavailableError, type HeraldError, rejected } from "../errors.js";
import { Outbox } from "../storage/outbox.js";
import { ZmqPublishTransport } from "../transport/zeromq-pub.js";
import { refuseIpcInUse } from "../util/ipc-file.js";
import { type Logger, refusalLogger, silentLogger } from "../util/log.js";
import { isoNow, type Message } from "../wire/message.js";
import type { SubmitResult } from "../wire/submit.js";
import { type MessageTrace, pongReply, traceIdArg, traceReply } from "./commands.js";
import { Dispatcher } from "./dispatcher.js";
import type { BrokerOptions, SubmitPeer } from "./options.js";
import { settleRemovedSinks } from "./removed-sinks.js";
import { type BrokerStatus, memory, type SourceStatus } from "./status.js";
import { StorageRefusals } from "./status-refusals.js";
import { SubmitServer } from "./submit-server.js";

export const HERALD_VERSION = "0.1.0";

export type { AdmissionCheck, BrokerOptions, BrokerSecurityHook, SubmitPeer } from "./options.js";
export type { BrokerStatus, SourceStatus } from "./status.js";

/**
 * The per-host broker: accepts messages on the submit socket(s), acknowledges them only once they are
 * committed to the outbox, and feeds every sink from the outbox with its own cursor.
 */
export class Broker {
  private outbox: Outbox | undefined;
  private server: SubmitServer | undefined;
  private readonly dispatchers: Dispatcher[] = [];
  private endpoints: string[] = [];
  private readonly startedAt = new Date().toISOString();
  private accepting = false;
  private stopping: Promise<void> | undefined;
  private loopsStopped = 0;
  private admissionRejected = 0;
  private readonly admissionByCode: Record<string, number> = {};
  private readonly log: Logger;
  /** Each refusal logged, up to a rate per code: an untrusted peer's flood must not fill the disk. */
  private readonly refusalLog: Logger;
  /** STORAGE_FULL / OUTBOX_FULL episodes: logged, and shown by status() and /readyz. */
  private readonly refusals: StorageRefusals;

  constructor(private readonly opts: BrokerOptions) {
    this.log = opts.log ?? silentLogger;
    this.refusalLog = refusalLogger(this.log);
    this.refusals = new StorageRefusals(this.log.child("outbox"));
  }

  get boundEndpoints(): readonly string[] {
    return this.endpoints;
  }

  async start(): Promise<void> {
    this.stopping = undefined;
    for (const ep of this.opts.submitEndpoints) prepareIpcDir(ep);
    // Trust store and ZAP handler before any socket binds: CURVE servers must never run unguarded.
    await this.opts.security?.start((err) => this.fatal(err));
    try {
      await this.startServing();
    } catch (err) {
      await this.abandonStart();
      await this.opts.security?.stop();
      throw err;
    }
  }

  /**
   * After a failed start (a submit endpoint in use, a sink that cannot open): close what did open, so
   * that the process can exit and nothing holds the IPC socket or the outbox. Nothing was acknowledged.
   * The outbox vouches for a clean close only if the previous run closed cleanly too, so ZeroMQ sinks
   * still resend their recent messages after a crash once a start succeeds.
   */
  private async abandonStart(): Promise<void> {
    this.accepting = false;
    for (const d of this.dispatchers) d.abortLoop();
    await this.server?.close();
    this.server = undefined;
    await Promise.all(this.opts.sinks.map((s) => s.close().catch(() => {})));
    await Promise.all(this.dispatchers.splice(0).map((d) => d.stop()));
    this.outbox?.close({ clean: this.outbox.openedAfterCleanClose || this.outbox.stats().headSeq === 0 });
    this.outbox = undefined;
  }

  private async startServing(): Promise<void> {
    // Before the outbox or any sink opens: a PUB sink binding a running broker's ipc:// path would unlink it.
    const pubs = this.opts.sinks.flatMap((s) => (s instanceof ZmqPublishTransport ? [s.endpoint] : []));
    await refuseIpcInUse([...this.opts.submitEndpoints, ...pubs], (ep) =>
      pubs.includes(ep) ? "broker.publish or sinks[].endpoint" : "broker.submit",
    );
    this.outbox = Outbox.open({
      ...this.opts.outbox,
      onClockBack: ({ aheadMs, rows }) =>
        this.log.warn("the wall clock went back: outbox rows stamped ahead of it were restamped now", {
          aheadMs,
          rows,
        }),
      onCleanCloseFailed: (why) => this.cleanCloseFailed(why),
    });
    this.outbox.onFail((err) => this.fatal(err));
    // A sink's name is its cursor: a renamed or removed sink's backlog is never dropped unnoticed.
    settleRemovedSinks(this.outbox, {
      configured: this.opts.sinks.map((s) => s.name),
      forget: this.opts.forgetSinks ?? [],
      log: this.log,
    });
    // A brand-new outbox has nothing to resend either way.
    const crashed = !this.outbox.openedAfterCleanClose && this.outbox.stats().headSeq > 0;
    if (crashed)
      this.log.warn(
        "previous run did not stop cleanly: ZeroMQ sinks and the legacy shim resend their recent messages",
      );
    this.opts.security?.requireZap();
    for (const sink of this.opts.sinks) await sink.open();
    for (const sink of this.opts.sinks) {
      const zmq = sink.kind === "zeromq";
      const d = new Dispatcher(sink, this.outbox, this.log.child("sink"), {
        startDelayMs: zmq ? (this.opts.publishDelayMs ?? 0) : 0,
        // The shim's sink too: it writes to PUB sockets (what it holds back is in its own checkpoint).
        rewindOnStart: (zmq || sink.kind === "shim") && crashed ? (this.opts.crashRewind ?? 10_000) : 0,
        // RabbitMQ confirms a window of publishes at a time: keep a second page coming behind the first.
        pagesInFlight: sink.kind === "amqp" ? 2 : 1,
      });
      this.dispatchers.push(d);
      d.start();
    }
    this.server = new SubmitServer(this, {
      endpoints: this.opts.submitEndpoints,
      maxRequestBytes: this.opts.maxBodyBytes * 4 + (1 << 20),
      log: this.log.child("submit"),
      ...(this.opts.submitSocketOptions ? { socketOptions: this.opts.submitSocketOptions } : {}),
      ...(this.opts.submitSocketOptionsFor ? { socketOptionsFor: this.opts.submitSocketOptionsFor } : {}),
    });
    this.opts.security?.requireZap();
    // Read only once every endpoint is bound and the broker accepts: a request queued meanwhile (a client
    // retrying across a restart) would otherwise be told SHUTTING_DOWN by a broker that is starting.
    this.endpoints = await this.server.bind();
    this.accepting = true;
    this.server.startReading();
    this.log.info("broker ready", {
      name: this.opts.name,
      submit: this.endpoints.join(","),
      pending: this.outbox.stats().pendingMessages,
    });
  }

  get maxBatch(): number {
    return this.opts.maxBatch;
  }

  get maxBodyBytes(): number {
    return this.opts.maxBodyBytes;
  }

  /** SubmitHandler: admission checks, loop stop, then one group-committed append. */
  async accept(messages: Message[], peer: SubmitPeer): Promise<SubmitResult[]> {
    const outbox = this.outbox;
    // After a storage fail-stop, the outbox's own error (what failed, and the fix), not "shutting down".
    const failed = outbox?.failed;
    if (failed !== undefined) return messages.map((m) => failure(m.id, failed));
    if (!outbox || !this.accepting) {
      return messages.map((m) =>
        failure(m.id, rejected("SHUTTING_DOWN", "broker is shutting down: retry with the same ids")),
      );
    }
    const results: SubmitResult[] = new Array(messages.length);
    const toStore: Message[] = [];
    const slots: number[] = [];
    messages.forEach((m, i) => {
      // Admission first: with CURVE it refuses `via` from anyone but a forwarding broker.
      const denied = this.admit(m, peer);
      if (denied) {
        results[i] = failure(m.id, denied);
        return;
      }
      if (m.via?.includes(this.opts.name)) {
        // Forwarding loop (A -> B -> A): answer ok so the sender's cursor moves, but never store twice.
        this.loopsStopped++;
        results[i] = { ok: true, id: m.id, seq: 0, accepted_at: new Date().toISOString(), duplicate: true };
        return;
      }
      toStore.push(m);
      slots.push(i);
    });
    if (toStore.length > 0) {
      const stored = await outbox.append(toStore);
      this.refusals.note(stored);
      stored.forEach((r, k) => {
        results[slots[k]!] = r.ok
          ? {
              ok: true,
              id: r.id,
              seq: r.seq,
              accepted_at: isoNow(r.acceptedAt),
              duplicate: r.duplicate,
            }
          : failure(r.id, r.error);
      });
    }
    return results;
  }

  private admit(m: Message, peer: SubmitPeer): HeraldError | undefined {
    for (const check of this.opts.admission ?? []) {
      const err = check(m, peer);
      if (err) {
        this.admissionRejected++;
        this.admissionByCode[err.code] = (this.admissionByCode[err.code] ?? 0) + 1;
        // The identity (signer or CURVE peer), never the routing id: that is a bearer token.
        this.refusalLog.warn("message refused", {
          id: m.id,
          topic: m.topic,
          code: err.code,
          identity: err.details["identity"] ?? null,
          ...(err.details["keyId"] !== undefined ? { keyId: err.details["keyId"] } : {}),
          reason: err.message,
        });
        return err;
      }
    }
    return undefined;
  }

  /** The outbox of a started broker; before start() (or after stop()) a clear error, not a TypeError. */
  private running(): Outbox {
    if (this.outbox === undefined)
      throw new BrokerUnavailableError("NO_BROKER", "the broker is not running: call start() first");
    return this.outbox;
  }

  async command(name: string, args: Record<string, unknown> = {}): Promise<unknown> {
    if (name === "status") return this.status();
    if (name === "trace") return this.trace(traceIdArg(args));
    if (name === "ping") {
      const { maxBodyBytes, maxBatch } = this.opts;
      return pongReply(this.opts.name, args["limits"] === true ? { maxBodyBytes, maxBatch } : undefined);
    }
    throw rejected("BAD_REQUEST", `unknown command '${name}': use status, ping or trace`);
  }

  /** Where the message with this id went: stored or not, and each sink's standing with it. */
  trace(id: string): MessageTrace {
    const found = this.running().trace(id);
    return traceReply(this.opts.name, id, found, (seq) => this.dispatchers.map((d) => d.standing(seq)));
  }

  private readonly sourceStatus: Array<() => SourceStatus[]> = [];

  /** Sources that feed this broker from outside (source ingest) report in `status()`. */
  reportSources(fn: () => SourceStatus[]): void {
    this.sourceStatus.push(fn);
  }

  status(): BrokerStatus {
    const stats = this.running().stats();
    const refusing = this.refusals.status();
    return {
      broker: this.opts.name,
      version: HERALD_VERSION,
      pid: process.pid,
      startedAt: this.startedAt,
      accepting: this.accepting,
      endpoints: this.endpoints,
      outbox: stats,
      sinks: this.dispatchers.map((d) => d.status(stats.headSeq)),
      sources: this.sourceStatus.flatMap((f) => f()),
      ...(refusing ? { refusing } : {}),
      memory: memory(),
      submit: {
        ...this.server!.counters,
        loopsStopped: this.loopsStopped,
        admissionRejected: this.admissionRejected,
        admissionByCode: { ...this.admissionByCode },
      },
    };
  }

  /**
   * Graceful stop: refuse new work with SHUTTING_DOWN, answer what is in flight, let sinks catch up, close.
   * A second call waits for the first.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async shutDown(): Promise<void> {
    const deadline = Date.now() + (this.opts.shutdownGraceMs ?? 5000);
    this.accepting = false;
    this.server?.stopAccepting();
    await this.server?.settle(deadline);
    const head = this.outbox?.stats().headSeq ?? 0;
    // Give sinks a short, bounded chance to publish what is stored; the rest replays on the next start.
    const drainDeadline = Math.min(deadline, Date.now() + 1000);
    await Promise.all(this.dispatchers.map((d) => d.drainTo(head, drainDeadline)));
    // Abort the loops, then close the sinks: a sink stuck in a send (AMQP waiting for a broker that is down)
    // rejects it with CLOSED on close, which lets its loop end.
    for (const d of this.dispatchers) d.abortLoop();
    await this.server?.close();
    await Promise.all(this.opts.sinks.map((s) => s.close().catch(() => {})));
    // splice: a start() after this stop() makes new dispatchers, on the new outbox.
    await Promise.all(this.dispatchers.splice(0).map((d) => d.stop()));
    this.outbox?.close();
    await this.opts.security?.stop();
    this.log.info("broker stopped", { name: this.opts.name });
  }

  /** The outbox's clean-stop record could not be written (a full disk): the next start acts as after a crash. */
  private cleanCloseFailed(why: string): void {
    this.log.warn(
      "could not record the clean stop in the outbox: the next start checks the whole file and, as after a " +
        "crash, ZeroMQ sinks and the legacy shim resend their recent messages (subscribers drop them by id)",
      { why, fix: "if the disk is full, free space on the outbox's file system before the next start" },
    );
  }

  private fatal(err: HeraldError): void {
    // Fail-stop: once storage (or the ZAP guard of CURVE sockets) failed, nothing more may be acknowledged.
    this.accepting = false;
    // The fail-stop's own error (what failed, the fix) to every request from now on, not SHUTTING_DOWN.
    this.server?.stopAccepting(err);
    const what = err.code.startsWith("STORAGE") ? "storage failed" : `${err.code}`;
    this.log.error(`${what}; refusing all submissions (fail-stop)`, { err: err.message });
    if (!err.code.startsWith("STORAGE")) {
      // Unguarded CURVE servers would admit anyone: close every listening socket now, not at stop().
      void this.server?.close();
      for (const sink of this.opts.sinks) if (sink.kind === "zeromq") void sink.close().catch(() => {});
    }
    this.opts.onFatal?.(err);
  }
}

function failure(id: string, err: HeraldError): SubmitResult {
  return { ok: false, id, error: { code: err.code, message: err.message, retryable: err.retryable } };
}

/** IPC sockets live in a directory only the broker's user (and group) can enter: file permissions guard submit. */
function prepareIpcDir(endpoint: string): void {
  if (!endpoint.startsWith("ipc://")) return;
  const dir = dirname(endpoint.slice("ipc://".length));
  mkdirSync(dir, { recursive: true, mode: 0o750 });
  try {
    chmodSync(dir, 0o750);
  } catch {
    // not ours to change (shared /tmp parent); the socket file itself still has our umask
  }
}
