/** One caller's messages, encoded once, waiting for the request that carries them. */
interface Entry<R> {
  parts: string[];
  /** UTF-16 code units of the parts (at most 3 UTF-8 bytes each). */
  units: number;
  resolve: (r: R[]) => void;
  reject: (e: Error) => void;
}

/** Sends one request with these encoded messages; resolves with one outcome per message, in order. */
export type SendParts<R> = (parts: string[]) => Promise<R[]>;

/**
 * A coalesced request stays under the broker's limit (maxBodyBytes * 4 + 1 MiB, so at least 1 MiB): counted
 * in UTF-16 code units, which costs no extra pass, 256 Ki units are at most 768 KiB of UTF-8.
 */
export const COALESCE_MAX_UNITS = 256 * 1024;

/**
 * Merges submits made by concurrent callers in the same tick into shared requests: 64 callers awaiting
 * one publish each become one request of 64 messages, so the broker parses, commits and answers once. A
 * lone caller pays nothing extra: the flush runs on process.nextTick, after the promise continuations of
 * the current turn (which is when sibling callers resumed by the same reply submit their next message).
 *
 * A caller's messages share one request unless together they exceed maxUnits; each caller still gets
 * exactly its own outcomes; a request that fails as a whole (timeout, no broker, closed) rejects every
 * caller in it, as a lone request would.
 */
export class Coalescer<R> {
  private queue: Array<Entry<R>> = [];
  private scheduled = false;

  constructor(
    private readonly send: SendParts<R>,
    private maxMessages: number,
    private readonly maxUnits = COALESCE_MAX_UNITS,
  ) {}

  /** From now on at most `max` messages per request (the broker said its maxBatch is lower than ours). */
  limit(max: number): void {
    this.maxMessages = Math.max(1, Math.min(this.maxMessages, max));
  }

  /** Whether `messages` can share a request at all (else the caller sends them on its own). */
  fits(count: number): boolean {
    return count > 0 && count <= this.maxMessages;
  }

  /** Queue messages already encoded with encodeSubmitted (at most maxMessages: see fits). */
  add(parts: string[]): Promise<R[]> {
    const units = parts.reduce((n, p) => n + p.length + 1, 0);
    if (units <= this.maxUnits) return this.enqueue(parts, units);
    // Too big for one request (the broker would drop the connection: a TIMEOUT that retrying cannot
    // cure): consecutive requests, each under the limit, the outcomes joined in order.
    return Promise.all(this.slices(parts).map((s) => this.enqueue(s.parts, s.units))).then((r) => r.flat());
  }

  private enqueue(parts: string[], units: number): Promise<R[]> {
    return new Promise<R[]>((resolve, reject) => {
      this.queue.push({ parts, units, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      process.nextTick(() => this.flush());
    });
  }

  /** Consecutive runs of `parts` under maxUnits each (a single larger message alone: one always fits). */
  private slices(parts: string[]): Array<{ parts: string[]; units: number }> {
    const out: Array<{ parts: string[]; units: number }> = [];
    let cur = { parts: [] as string[], units: 0 };
    for (const p of parts) {
      if (cur.parts.length > 0 && cur.units + p.length + 1 > this.maxUnits) {
        out.push(cur);
        cur = { parts: [], units: 0 };
      }
      cur.parts.push(p);
      cur.units += p.length + 1;
    }
    if (cur.parts.length > 0) out.push(cur);
    return out;
  }

  private flush(): void {
    this.scheduled = false;
    const entries = this.queue;
    this.queue = [];
    let group: Array<Entry<R>> = [];
    let count = 0;
    let units = 0;
    for (const e of entries) {
      const over = count + e.parts.length > this.maxMessages || units + e.units > this.maxUnits;
      if (group.length > 0 && over) {
        this.sendGroup(group);
        group = [];
        count = 0;
        units = 0;
      }
      group.push(e);
      count += e.parts.length;
      units += e.units;
    }
    if (group.length > 0) this.sendGroup(group);
  }

  private sendGroup(group: Array<Entry<R>>): void {
    const parts = group.length === 1 ? group[0]!.parts : group.flatMap((e) => e.parts);
    this.send(parts).then(
      (results) => {
        let offset = 0;
        for (const e of group) {
          e.resolve(results.slice(offset, offset + e.parts.length));
          offset += e.parts.length;
        }
      },
      (err: Error) => {
        for (const e of group) e.reject(err);
      },
    );
  }
}
