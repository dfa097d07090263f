import type { Message } from "../wire/message.js";
import type { StoredMessage } from "./types.js";

/**
 * The newest committed messages, kept in memory so that sinks keeping up with live traffic read them
 * without a SQLite query and an envelope decode per message (the hot path of every publish). Holds a
 * contiguous run of sequence numbers ending at the outbox head; older reads go to disk.
 */
export class RecentMessages {
  /**
   * Held rows are items[start..]: dropping old rows moves `start` and clears their slots (so that the
   * messages are not kept alive until the next compaction), and the array is compacted rarely.
   */
  private items: Array<StoredMessage | undefined> = [];
  private start = 0;
  private bytes = 0;

  constructor(
    private readonly maxItems = 4096,
    private readonly maxBytes = 8 << 20,
  ) {}

  private get count(): number {
    return this.items.length - this.start;
  }

  /** Add rows just committed (in seq order, contiguous with what is held). */
  add(rows: readonly StoredMessage[]): void {
    if (rows.length === 0) return;
    const last = this.count > 0 ? this.items[this.items.length - 1] : undefined;
    if (last && rows[0]!.seq !== last.seq + 1) this.clear(); // a gap: start afresh rather than serve a hole
    for (const r of rows) {
      this.items.push(r);
      this.bytes += r.bytes;
    }
    while (this.count > this.maxItems || (this.bytes > this.maxBytes && this.count > 1)) this.dropFirst();
    this.compact();
  }

  private dropFirst(): void {
    this.bytes -= this.items[this.start]!.bytes;
    this.items[this.start] = undefined;
    this.start++;
  }

  /**
   * Copy the held rows to a fresh array once the dropped ones make up half of it. Copying on every add
   * cost a 32 KiB array per one-message commit (4,096 pointers), most of a lone publisher's garbage.
   */
  private compact(): void {
    if (this.start < 1024 || this.start * 2 < this.items.length) return;
    this.items = this.items.slice(this.start);
    this.start = 0;
  }

  /** Rows after `afterSeq` when they are all held here; undefined means "read from disk". */
  read(afterSeq: number, limit: number, maxBytes: number): StoredMessage[] | undefined {
    const first = this.items[this.start];
    if (!first || afterSeq + 1 < first.seq) return undefined;
    const out: StoredMessage[] = [];
    let total = 0;
    for (let i = this.start + afterSeq + 1 - first.seq; i < this.items.length && out.length < limit; i++) {
      const row = this.items[i]!;
      if (out.length > 0 && total + row.bytes > maxBytes) break;
      total += row.bytes;
      out.push(row);
    }
    return out;
  }

  /** Forget rows up to `seq` (pruned from disk: a read must not find them here either). */
  dropThrough(seq: number): void {
    const first = this.items[this.start];
    if (!first || seq < first.seq) return;
    const n = Math.min(this.count, seq - first.seq + 1);
    for (let i = 0; i < n; i++) this.dropFirst();
    this.compact();
  }

  clear(): void {
    this.items = [];
    this.start = 0;
    this.bytes = 0;
  }
}

/** The stored form of a message: per-socket fields removed, as it would decode from disk. */
export function storedForm(msg: Message): Message {
  if (msg.seq === undefined && msg.stream === undefined) return msg;
  const { seq: _seq, stream: _stream, ...rest } = msg;
  return rest;
}
