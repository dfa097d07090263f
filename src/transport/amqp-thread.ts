import { Worker } from "node:worker_threads";
import { ClosedError, type ErrorCode, rejected, TransportError } from "../errors.js";
import { type AmqpFormat, type AmqpPublishProperties, encodeAmqp } from "../wire/fedora-messaging.js";
import type { Message } from "../wire/message.js";
import {
  type AmqpLogger,
  type AmqpTransportOptions,
  repeatedPrefixCheck,
  resolveAmqpOptions,
  sinkFormat,
} from "./amqp-options.js";
import { bump, initialHealth, type Subscription, type Transport, type TransportHealth } from "./types.js";

/** Requests to the worker thread (amqp-thread-worker.ts). */
export type ToWorker =
  | { op: "open"; id: number }
  | { op: "send"; id: number; items: PackedPublish[]; bytes: ArrayBuffer }
  | { op: "close"; id: number };

/** One encoded publish whose content is `bytes[offset, offset + length)` of its batch's buffer. */
export interface PackedPublish {
  id: string;
  routingKey: string;
  properties: AmqpPublishProperties;
  offset: number;
  length: number;
}

export interface WireError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}

type FromWorker =
  | { op: "done"; id: number; health: TransportHealth; error?: WireError }
  | { op: "health"; health: TransportHealth }
  | { op: "log"; level: Parameters<AmqpLogger>[0]; message: string; fields?: Record<string, unknown> };

interface Call {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** How long close() lets the worker close its connection before terminating the thread. */
const CLOSE_TIMEOUT_MS = 5_000;

/**
 * The compiled worker entry in dist/transport/, through ../transport/ so that the CLI bundle's chunks
 * in dist/bin/ find it too. Under the test runner this module is TypeScript source that Node's worker
 * threads cannot load; the build of the same source is in dist/ (npm test builds first).
 */
const WORKER_URL = import.meta.url.endsWith(".ts")
  ? new URL("../../dist/transport/amqp-thread-worker.js", import.meta.url)
  : new URL("../transport/amqp-thread-worker.js", import.meta.url);

/**
 * An AMQP sink whose publisher runs on a worker thread with its own event loop. In the broker the
 * sink shares the main thread with intake, group commits and the PUB sockets; publisher confirms then
 * wait behind those turns and RabbitMQ idles with an empty window. On its own thread the window stays
 * full while the broker is busy (bench figure 6). Same behaviour as AmqpTransport's sink side: `send`
 * resolves once RabbitMQ confirmed the batch. If the thread dies, pending sends reject (retryable) and
 * the next send starts a new one; the dispatcher resends, duplicates are allowed, loss is not.
 */
export class ThreadedAmqpSink implements Transport {
  readonly kind = "amqp";
  readonly name: string;
  private readonly plain: Omit<AmqpTransportOptions, "log">;
  private readonly log: AmqpLogger;
  private readonly format: AmqpFormat;
  private readonly topicPrefix: string;
  private readonly checkPrefix: ((topic: string) => void) | undefined;
  private worker: Worker | undefined;
  private readonly calls = new Map<number, Call>();
  private nextId = 0;
  private last: TransportHealth = initialHealth();
  private threadRestarts = 0;
  private closed = false;

  constructor(options: AmqpTransportOptions) {
    // Validate here, on the caller's thread: a bad url or option fails construction as with AmqpTransport.
    const o = resolveAmqpOptions(options);
    this.log = o.log;
    this.format = sinkFormat(o);
    this.topicPrefix = o.topicPrefix;
    this.checkPrefix = repeatedPrefixCheck(o.topicPrefix, options.name, o.log);
    const { log: _log, ...plain } = options;
    this.plain = plain;
    this.name = options.name;
  }

  open(): Promise<void> {
    return this.call((id) => ({ op: "open", id }));
  }

  send(batch: readonly Message[]): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError(`AMQP transport '${this.name}'`));
    if (batch.length === 0) return Promise.resolve();
    if (this.checkPrefix) for (const m of batch) this.checkPrefix(m.topic);
    let packed: { items: PackedPublish[]; bytes: ArrayBuffer };
    try {
      packed = pack(batch, this.format, this.topicPrefix);
    } catch (err) {
      return Promise.reject(err); // a message this sink cannot encode rejects the batch, as in AmqpTransport
    }
    return this.call((id) => ({ op: "send", id, ...packed }), [packed.bytes]);
  }

  receive(): Subscription {
    throw rejected(
      "UNSUPPORTED",
      `AMQP sink '${this.name}' runs on its own thread and only publishes: configure a source (sources:) to consume`,
    );
  }

  health(): TransportHealth {
    const h = structuredClone(this.last);
    if (this.closed) h.state = "closed";
    if (this.threadRestarts > 0) bump(h, "threadRestarts", this.threadRestarts);
    return h;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const w = this.worker;
    this.worker = undefined; // its exit is expected now, not a crash
    if (w !== undefined) {
      // The worker closes its AmqpTransport (pending sends reject CLOSED through onMessage), then exits.
      const id = ++this.nextId;
      const closed = new Promise<void>((resolve) => this.calls.set(id, { resolve, reject: () => resolve() }));
      w.postMessage({ op: "close", id } satisfies ToWorker);
      // Bounded: a close stuck on a dead connection must not hold up the broker's shutdown. Whatever was
      // unconfirmed stays behind the sink's cursor in the outbox and is sent again after the restart.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        closed,
        new Promise((resolve) => w.once("exit", resolve)),
        new Promise((resolve) => {
          timer = setTimeout(resolve, CLOSE_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      await w.terminate();
    }
    this.failAll(new ClosedError(`AMQP transport '${this.name}'`));
  }

  private call(request: (id: number) => ToWorker, transfer: ArrayBuffer[] = []): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError(`AMQP transport '${this.name}'`));
    const w = this.worker ?? this.spawn();
    const id = ++this.nextId;
    return new Promise<void>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      w.postMessage(request(id), transfer);
    });
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_URL, { workerData: this.plain, name: `herald amqp ${this.name}` });
    this.worker = w;
    w.on("message", (m: FromWorker) => this.onMessage(m));
    w.on("error", (err) => this.lost(w, err));
    w.on("exit", (code) => this.lost(w, new Error(`exited with code ${code}`)));
    return w;
  }

  private onMessage(m: FromWorker): void {
    if (m.op === "log") {
      this.log(m.level, m.message, m.fields);
      return;
    }
    this.last = m.health;
    if (m.op === "done") {
      const c = this.calls.get(m.id);
      if (c === undefined) return;
      this.calls.delete(m.id);
      if (m.error === undefined) c.resolve();
      else c.reject(this.rebuild(m.error));
    }
  }

  private rebuild(e: WireError): Error {
    if (e.code === "CLOSED") return new ClosedError(`AMQP transport '${this.name}'`);
    // A message the thread could not publish at all keeps its class: the dispatcher passes it over.
    if (!e.retryable && (e.code === "INVALID" || e.code === "TOO_LARGE")) return rejected(e.code, e.message);
    return new TransportError(e.code, e.message, { retryable: e.retryable });
  }

  /** The thread died (or was terminated by close): pending sends fail; the next call starts a new one. */
  private lost(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    if (this.closed) return;
    this.threadRestarts++;
    this.last = {
      ...this.last,
      state: "down",
      lastError: err.message,
      lastErrorAt: new Date().toISOString(),
    };
    this.log("error", `AMQP sink thread stopped (${err.message}); unconfirmed messages will be sent again`);
    this.failAll(
      new TransportError(
        "TRANSPORT",
        `AMQP sink '${this.name}' thread stopped (${err.message}); herald resends on a new thread`,
        { retryable: true },
      ),
    );
  }

  private failAll(err: Error): void {
    const pending = [...this.calls.values()];
    this.calls.clear();
    for (const c of pending) c.reject(err);
  }
}

/**
 * Encode on this thread (a message the outbox stored or just wrote has its envelope bytes at hand, so
 * the herald format costs a copy) and put every content in one buffer that is transferred, not cloned.
 */
function pack(
  batch: readonly Message[],
  format: AmqpFormat,
  topicPrefix: string,
): { items: PackedPublish[]; bytes: ArrayBuffer } {
  const pubs = batch.map((m) => encodeAmqp(m, format, { topicPrefix }));
  let total = 0;
  for (const p of pubs) total += p.content.length;
  const bytes = new ArrayBuffer(total);
  const view = new Uint8Array(bytes);
  const items: PackedPublish[] = [];
  let offset = 0;
  for (const [i, p] of pubs.entries()) {
    view.set(p.content, offset);
    items.push({
      id: (batch[i] as Message).id,
      routingKey: p.routingKey,
      properties: p.properties,
      offset,
      length: p.content.length,
    });
    offset += p.content.length;
  }
  return { items, bytes };
}
