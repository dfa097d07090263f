import { type HeraldError, MessageRejectedError } from "../errors.js";
import { undecodableSeq } from "../storage/codec.js";
import type { Outbox } from "../storage/outbox.js";
import type { StoredMessage } from "../storage/types.js";
import type { Transport, TransportHealth } from "../transport/types.js";
import { backoffDelay, sleep } from "../util/backoff.js";
import type { Logger } from "../util/log.js";

export interface SinkStatus {
  name: string;
  kind: string;
  cursor: number;
  lag: number;
  delivered: number;
  retries: number;
  /** Messages this sink refused for good (cannot carry them: too large, not encodable): logged, passed over. */
  skipped: number;
  lastError?: string;
  lastErrorAt?: string;
  lastDeliveredAt?: string;
  health: TransportHealth;
}

/** Where one sink stands with one message (`herald trace`, see trace.ts). */
export interface SinkStanding {
  name: string;
  kind: string;
  cursor: number;
  /** The highest seq handed to the transport, confirmed or not. */
  sentThrough: number;
  /** Why the sink passed the message over (it is among the last PASSED_OVER_KEPT, kept across restarts). */
  passedOver?: string;
  /** A holding sink (the shim's) holds it back, or dropped it. */
  held?: HoldNote;
  health: TransportHealth;
  lastError?: string;
}

export interface DispatcherOptions {
  batchSize?: number;
  maxBatchBytes?: number;
  /** Wait this long after start before the first send (subscribers reconnecting after a broker restart). */
  startDelayMs?: number;
  /**
   * Resend this many messages before the persisted cursor on start. A PUB socket's send resolves once
   * libzmq has queued the message, not transmitted it; after a crash, up to a high-water mark of queued
   * messages may never have left. Subscribers deduplicate by id.
   */
  rewindOnStart?: number;
  /**
   * Pages handed to the transport before the oldest is confirmed (default 1). A transport with its own
   * confirmation window (AMQP publisher confirms) otherwise drains that window at every page boundary.
   * Cursors still advance in order; after a failure every page from the failed one on is sent again.
   */
  pagesInFlight?: number;
}

/**
 * A sink that keeps some messages back after taking them, which must reach it again after a restart (the
 * legacy shim holds messages for a legacy port not bound yet, in memory). The dispatcher hands it stored
 * rows with their seqs, persists the cursor and state `checkpoint` gives, and hands that state back at start.
 */
export interface HoldingSink extends Transport {
  sendStored(rows: readonly StoredMessage[]): Promise<void>;
  /** Having taken everything through `delivered`: the cursor to persist (at most `delivered`) and state to keep with it. */
  checkpoint(delivered: number): { cursor: number; state: string };
  /** At start, with the state saved with the `persisted` cursor: the seq to read after. */
  resume(state: string | undefined, persisted: number, rewind: number): number;
  /** What the sink did with the message at `seq` other than send it, if anything (`herald trace`). */
  holdNote?(seq: number): HoldNote | undefined;
}

/** A holding sink's word on one message: still held back, or dropped (never to be sent). */
export interface HoldNote {
  state: "held" | "passed-over";
  detail: string;
}

function holdingSink(t: Transport): HoldingSink | undefined {
  const h = t as Partial<HoldingSink>;
  return typeof h.checkpoint === "function" &&
    typeof h.sendStored === "function" &&
    typeof h.resume === "function"
    ? (t as HoldingSink)
    : undefined;
}

/** Passed-over messages remembered for `herald trace` (each is also logged as an error), saved with the sink. */
const PASSED_OVER_KEPT = 100;
const CANNOT_CARRY = "sink cannot carry a message: passed over (other sinks still get it)";
const UNDECODABLE = "an outbox row cannot be decoded (damaged bytes): passed over";
/** The longest a dispatcher works through pages before it lets the event loop turn. */
const TURN_MS = 50;

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface LoopState {
  flights: Flight[];
  /** The seq the next page is read after (ahead of the cursor while pages are in flight). */
  readCursor: number;
  /** Failures in a row, for the backoff. */
  attempt: number;
  /** Up to this seq, pages of one message: finding the one a sink refuses for good. */
  singlesUntil: number;
}

interface Flight {
  last: number;
  count: number;
  /** The message's id when the page holds one message. */
  id: string | undefined;
  /** Resolves with undefined once the transport took the page, or with the error. */
  done: Promise<unknown>;
}

/**
 * Feeds one sink from the outbox: reads a page after the sink's cursor, hands it to the transport,
 * advances the cursor only once the transport has taken every message. A failing sink retries the same
 * page with capped backoff; it never blocks other sinks or submitters (each has its own loop).
 *
 * A page the transport refuses with MessageRejectedError (a message it can never carry: too large for
 * it, not encodable in its format) is sent again one message at a time, at once; the message it still
 * refuses alone is passed over (logged as an error, counted in `skipped`) instead of stalling the sink and,
 * through its cursor, the outbox. Other sinks still get it. An outbox row whose bytes no longer decode is
 * passed over the same way, once the rows before it went out.
 */
export class Dispatcher {
  private cursor = 0;
  private delivered = 0;
  private retries = 0;
  private skipped = 0;
  private lastError: string | undefined;
  private lastErrorAt: string | undefined;
  /** Epoch ms, formatted only when status() asks: a page can be a single message. */
  private lastDeliveredAt: number | undefined;
  /** This run moved the cursor (so a checkpoint at stop says something new). */
  private advanced = false;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly holding: HoldingSink | undefined;
  /** The highest seq handed to the transport (confirmed or not). */
  private sentThrough = 0;
  /** The last passed-over messages: seq -> why (saved in the outbox: a restart must not turn them into "done"). */
  private readonly passedOver = new Map<number, string>();

  constructor(
    readonly transport: Transport,
    private readonly outbox: Outbox,
    private readonly log: Logger,
    private readonly opts: DispatcherOptions = {},
  ) {
    this.holding = holdingSink(transport);
  }

  start(): void {
    // Only a sink that already had a cursor can have lost queued messages in a crash; a new one starts at the head.
    const name = this.transport.name;
    const known = name in this.outbox.stats().sinks;
    const persisted = this.outbox.registerSink(name);
    for (const [seq, why] of this.outbox.passedOver(name)) this.passedOver.set(seq, why);
    const rewind = known ? (this.opts.rewindOnStart ?? 0) : 0;
    const start = this.holding
      ? this.holding.resume(known ? this.outbox.sinkState(name) : undefined, persisted, rewind)
      : Math.max(0, persisted - rewind);
    // Rows before the first stored one were pruned: a rewind (or a cursor saved before the prune) that
    // lands there has nothing to send, and would leave the loop reading empty pages (see skipPruned).
    this.cursor = Math.max(start, this.outbox.firstSeq() - 1);
    this.loop = this.run().catch((err) =>
      this.log.error("dispatcher stopped", { sink: this.transport.name, err }),
    );
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    if (this.opts.startDelayMs) await sleep(this.opts.startDelayMs, signal);
    const loop: LoopState = { flights: [], readCursor: this.cursor, attempt: 0, singlesUntil: 0 };
    let turn = performance.now();
    while (!signal.aborted) {
      // Sends that resolve at once, over a long backlog, would otherwise never let timers and sockets run.
      if (performance.now() - turn > TURN_MS) {
        await nextTurn();
        turn = performance.now();
      }
      this.fill(loop);
      const oldest = loop.flights[0];
      if (oldest === undefined) {
        // Rejects with an AbortError on stop; the loop condition then ends the loop.
        if (!this.skipPruned()) await this.outbox.waitForAppend(this.cursor, signal).catch(() => {});
        continue;
      }
      const err = await oldest.done;
      if (err === undefined) {
        loop.attempt = 0;
        loop.flights.shift();
        this.delivered += oldest.count;
        this.advance(oldest.last);
        this.lastDeliveredAt = Date.now();
      } else if (!signal.aborted) await this.pageFailed(loop, oldest, err);
    }
  }

  /** Hand pages to the transport until `pagesInFlight` are out (one while finding a refused message). */
  private fill(loop: LoopState): void {
    const maxFlights = Math.max(1, this.opts.pagesInFlight ?? 1);
    while (loop.flights.length < maxFlights) {
      const single = loop.readCursor < loop.singlesUntil;
      if (single && loop.flights.length > 0) return;
      const flight = this.sendPage(loop.readCursor, single);
      if (flight === undefined) return;
      loop.flights.push(flight);
      loop.readCursor = flight.last;
      this.sentThrough = flight.last;
    }
  }

  /** The oldest page failed: deal with it, then every page from it on is read and sent again. */
  private async pageFailed(loop: LoopState, oldest: Flight, err: unknown): Promise<void> {
    await Promise.all(loop.flights.map((f) => f.done)); // let the later pages settle before resending them
    loop.flights = [];
    this.sentThrough = this.cursor; // nothing past the cursor is in the transport's hands any more
    const bad = undecodableSeq(err);
    if (err instanceof MessageRejectedError) {
      if (oldest.count === 1) this.passOver(oldest.last, oldest.id, err, CANNOT_CARRY);
      else loop.singlesUntil = Math.max(loop.singlesUntil, oldest.last);
    } else if (bad !== undefined) {
      // The read stopped before the damaged row (the rows before it went out): it is the next one.
      this.passOver(bad, undefined, err as HeraldError, UNDECODABLE);
    } else {
      this.noteFailure(err, loop.attempt++);
      await sleep(backoffDelay(loop.attempt), this.abort.signal);
    }
    loop.readCursor = this.cursor;
  }

  /**
   * Nothing to read after the cursor, yet the head is past it: those rows were pruned under this sink (a
   * cursor saved before a prune; start() steps over what it can see then). Nothing is left to send there:
   * move on to the head. Waiting for an append after the cursor would return at once, and the loop would
   * spin without ever yielding to the event loop.
   */
  private skipPruned(): boolean {
    const head = this.outbox.headSeq;
    if (head <= this.cursor) return false;
    this.log.warn("the messages after this sink's cursor were pruned: moving on to the newest", {
      sink: this.transport.name,
      cursor: this.cursor,
      head,
    });
    this.advance(head);
    return true;
  }

  /** Move the cursor (delivered or passed over: either way the sink is done with it). */
  private advance(seq: number): void {
    this.cursor = seq;
    this.advanced = true;
    if (this.holding === undefined) {
      this.outbox.ack(this.transport.name, seq);
      return;
    }
    // The persisted cursor stays before what the sink still holds, so a restart hands that over again.
    const c = this.holding.checkpoint(seq);
    this.outbox.ack(this.transport.name, Math.min(c.cursor, seq), c.state);
  }

  /** This sink can never send the message at `seq`: say so loudly, count it, and go on with the next. */
  private passOver(seq: number, id: string | undefined, err: HeraldError, what: string): void {
    this.skipped++;
    this.passedOver.set(seq, `${err.code}: ${err.message}`.slice(0, 300));
    if (this.passedOver.size > PASSED_OVER_KEPT) this.passedOver.delete(this.passedOver.keys().next().value!);
    this.outbox.savePassedOver(this.transport.name, this.passedOver);
    this.lastError = err.message;
    this.lastErrorAt = new Date().toISOString();
    this.log.error(what, { sink: this.transport.name, id, seq, code: err.code, err: err.message });
    this.advance(seq);
  }

  /** Read the page after `afterSeq` and hand it to the transport; undefined when there is nothing to send. */
  private sendPage(afterSeq: number, single: boolean): Flight | undefined {
    const size = single ? 1 : Math.max(1, this.opts.batchSize ?? 500);
    let page: ReturnType<Outbox["read"]>;
    try {
      page = this.outbox.read(afterSeq, size, this.opts.maxBatchBytes ?? 4 << 20);
    } catch (err) {
      // A failed read (SQLite I/O) is a failed page: retried with backoff, not the end of this sink's loop.
      return { last: afterSeq, count: 0, id: undefined, done: Promise.resolve(err) };
    }
    const last = page[page.length - 1];
    if (last === undefined) return undefined;
    const sent = this.holding
      ? this.holding.sendStored(page)
      : this.transport.send(page.map((s) => s.message));
    const done = sent.then(
      () => undefined,
      (err: unknown) => err ?? new Error("send failed"),
    );
    return { last: last.seq, count: page.length, id: page.length === 1 ? last.message.id : undefined, done };
  }

  private noteFailure(err: unknown, attempt: number): void {
    this.retries++;
    this.lastError = err instanceof Error ? err.message : String(err);
    this.lastErrorAt = new Date().toISOString();
    // Log the first failure and then every tenth, so an outage is visible without flooding the log.
    if (attempt % 10 === 0)
      this.log.warn("sink send failed; will retry", { sink: this.transport.name, err: this.lastError });
  }

  /** Wait (bounded) until this sink has taken everything up to `seq`. */
  async drainTo(seq: number, deadline: number): Promise<boolean> {
    while (this.cursor < seq && Date.now() < deadline) await sleep(10);
    return this.cursor >= seq;
  }

  status(headSeq: number): SinkStatus {
    const s: SinkStatus = {
      name: this.transport.name,
      kind: this.transport.kind,
      cursor: this.cursor,
      lag: Math.max(0, headSeq - this.cursor),
      delivered: this.delivered,
      retries: this.retries,
      skipped: this.skipped,
      health: this.transport.health(),
    };
    if (this.lastError !== undefined) s.lastError = this.lastError;
    if (this.lastErrorAt !== undefined) s.lastErrorAt = this.lastErrorAt;
    if (this.lastDeliveredAt !== undefined) s.lastDeliveredAt = new Date(this.lastDeliveredAt).toISOString();
    return s;
  }

  /** Where this sink stands with the message at `seq`. */
  standing(seq: number): SinkStanding {
    const s: SinkStanding = {
      name: this.transport.name,
      kind: this.transport.kind,
      cursor: this.cursor,
      sentThrough: Math.max(this.sentThrough, this.cursor),
      health: this.transport.health(),
    };
    const why = this.passedOver.get(seq);
    if (why !== undefined) s.passedOver = why;
    const held = this.holding?.holdNote?.(seq);
    if (held !== undefined) s.held = held;
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  /** Stop the loop. A send still in flight ends when its transport closes (sends then reject with CLOSED). */
  abortLoop(): void {
    this.abort.abort();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
    // A holding sink may have sent what it held since its last delivery: save where it stands now.
    if (this.holding && this.advanced) {
      try {
        this.advance(this.cursor);
      } catch {
        // outbox closed or failed: the last saved checkpoint stands (a restart only resends more)
      }
    }
  }
}
