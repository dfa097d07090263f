import { HeraldError } from "../errors.js";
import { SINK_JOINED_PREFIX, SINK_SKIPPED_PREFIX, SINK_STATE_PREFIX, type Statements } from "./statements.js";

const FLUSH_MS = 100;

/** Runs a small write transaction for the outbox (which owns errors, fail-stop and the fsync). */
export type WriteFn = (during: string, fn: () => unknown) => void;

/**
 * Each sink's delivery position. Kept in memory and written lazily (within 100 ms of an ack), because a
 * cursor write per delivered batch would cost a commit on the hot path; after a crash a cursor can only lag
 * (redelivery), never run ahead of committed data. Registrations are written at once.
 */
export class SinkCursors {
  private readonly cursors = new Map<string, number>();
  private readonly dirty = new Map<string, number>();
  /** A sink's own state, written with its cursor (the legacy shim: what it still holds back). */
  private readonly states = new Map<string, string>();
  private readonly dirtyStates = new Set<string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sql: Statements,
    private readonly write: WriteFn,
    /** False once the outbox is closed or failed: then nothing is written. */
    private readonly writable: () => boolean,
  ) {
    for (const c of sql.cursors.all()) this.cursors.set(c.sink, c.seq);
    for (const r of sql.sinkStates.all()) {
      const sink = r.key.slice(SINK_STATE_PREFIX.length);
      if (this.cursors.has(sink)) this.states.set(sink, r.value);
    }
  }

  get size(): number {
    return this.cursors.size;
  }

  has(name: string): boolean {
    return this.cursors.has(name);
  }

  entries(): IterableIterator<[string, number]> {
    return this.cursors.entries();
  }

  /** The persisted cursor of a known sink, or `start` for a new one (written before returning). */
  register(name: string, start: number): number {
    const known = this.cursors.get(name);
    if (known !== undefined) return known;
    this.write(`registering sink '${name}'`, () => {
      this.sql.insertCursor.run(name, start);
      this.sql.setMeta.run(SINK_JOINED_PREFIX + name, String(start));
    });
    this.cursors.set(name, start);
    return start;
  }

  unregister(name: string): void {
    if (!this.cursors.has(name)) return;
    this.write(`unregistering sink '${name}'`, () => {
      this.sql.deleteCursor.run(name);
      this.sql.deleteSinkState.run(SINK_STATE_PREFIX + name);
      this.sql.deleteSinkState.run(SINK_JOINED_PREFIX + name);
      this.sql.deleteSinkState.run(SINK_SKIPPED_PREFIX + name);
    });
    this.cursors.delete(name);
    this.dirty.delete(name);
    this.states.delete(name);
    this.dirtyStates.delete(name);
  }

  /** A sink's last passed-over messages (seq -> why), as saved by savePassedOver. */
  passedOver(name: string): Map<number, string> {
    const row = this.sql.getMeta.get(SINK_SKIPPED_PREFIX + name);
    const out = new Map<number, string>();
    try {
      for (const [seq, why] of JSON.parse(row?.value ?? "[]") as Array<[number, string]>)
        if (Number.isSafeInteger(seq) && typeof why === "string") out.set(seq, why);
    } catch {
      // an unreadable record only loses what trace can say about old pass-overs
    }
    return out;
  }

  /** Written at once: a pass-over is rare (each is logged as an error) and must outlive a crash. */
  savePassedOver(name: string, passed: ReadonlyMap<number, string>): void {
    if (!this.writable()) return;
    const value = JSON.stringify([...passed]);
    try {
      this.write("saving passed-over messages", () =>
        this.sql.setMeta.run(SINK_SKIPPED_PREFIX + name, value),
      );
    } catch {
      // out of space or in fail-stop: trace may call them done after a restart; the error log has them
    }
  }

  /** The state last given with this sink's cursor (persisted, or from this run). */
  state(name: string): string | undefined {
    return this.states.get(name);
  }

  /**
   * Move a sink's cursor forward (never back); `head` is the highest seq that exists. `state` (the sink's
   * own, opaque here) is written in the same transaction as the cursor, so the two always match on disk.
   */
  advance(sink: string, seq: number, head: number, state?: string): void {
    const current = this.cursors.get(sink);
    if (current === undefined)
      throw new HeraldError(
        "INTERNAL",
        `sink '${sink}' is not registered: call registerSink('${sink}') first`,
      );
    if (!Number.isInteger(seq) || seq > head)
      throw new HeraldError("INTERNAL", `sink '${sink}' acked seq ${seq}, beyond the head ${head}`);
    if (state !== undefined && state !== this.states.get(sink)) {
      this.states.set(sink, state);
      this.dirtyStates.add(sink);
    }
    if (seq > current) {
      this.cursors.set(sink, seq);
      this.dirty.set(sink, seq);
    }
    if (this.dirty.size > 0 || this.dirtyStates.size > 0)
      this.timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  /** Write every changed cursor now. */
  flush(): void {
    this.stop();
    if (!this.writable() || (this.dirty.size === 0 && this.dirtyStates.size === 0)) return;
    try {
      this.write("saving sink cursors", () => {
        for (const [sink, seq] of this.dirty) this.sql.saveCursor.run(sink, seq);
        for (const sink of this.dirtyStates)
          this.sql.saveSinkState.run(SINK_STATE_PREFIX + sink, this.states.get(sink) ?? "");
      });
      this.dirty.clear();
      this.dirtyStates.clear();
    } catch {
      // Out of space or in fail-stop: the cursors stay dirty and are retried on a timer of their own (an
      // idle sink acks nothing that would arm it again); a lagging cursor only means redelivery.
      if (this.writable()) this.timer = setTimeout(() => this.flush(), FLUSH_MS).unref();
    }
  }

  /** The slowest sink's cursor (0 with no sink): rows after it are pending. */
  floor(): number {
    let min: number | undefined;
    for (const seq of this.cursors.values()) if (min === undefined || seq < min) min = seq;
    return min ?? 0;
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
