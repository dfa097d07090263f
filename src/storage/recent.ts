import type { Message } from "../wire/message.js";
import type { StoredMessage } from "./types.js";

/**
 * The newest committed messages, kept in memory so that sinks keeping up with live traffic read them
 * without a SQLite query and an envelope decode per message (the hot path of every publish). Holds a
 * contiguous run of sequence numbers ending at the outbox head; older reads go to disk.
 */
export class RecentMessages {
  private items: StoredMessage[] = [];
  private bytes = 0;

  constructor(
    private readonly maxItems = 4096,
    private readonly maxBytes = 8 << 20,
  ) {}

  /** Add rows just committed (in seq order, contiguous with what is held). */
  add(rows: readonly StoredMessage[]): void {
    if (rows.length === 0) return;
    const last = this.items[this.items.length - 1];
    if (last && rows[0]!.seq !== last.seq + 1) this.clear(); // a gap: start afresh rather than serve a hole
    for (const r of rows) {
      this.items.push(r);
      this.bytes += r.bytes;
    }
    let drop = 0;
    while (
      this.items.length - drop > this.maxItems ||
      (this.bytes > this.maxBytes && this.items.length - drop > 1)
    ) {
      this.bytes -= this.items[drop]!.bytes;
      drop++;
    }
    if (drop > 0) this.items = this.items.slice(drop);
  }

  /** Rows after `afterSeq` when they are all held here; undefined means "read from disk". */
  read(afterSeq: number, limit: number, maxBytes: number): StoredMessage[] | undefined {
    const first = this.items[0];
    if (!first || afterSeq + 1 < first.seq) return undefined;
    const out: StoredMessage[] = [];
    let total = 0;
    for (let i = afterSeq + 1 - first.seq; i < this.items.length && out.length < limit; i++) {
      const row = this.items[i]!;
      if (out.length > 0 && total + row.bytes > maxBytes) break;
      total += row.bytes;
      out.push(row);
    }
    return out;
  }

  /** Forget rows up to `seq` (pruned from disk: a read must not find them here either). */
  dropThrough(seq: number): void {
    const first = this.items[0];
    if (!first || seq < first.seq) return;
    const n = Math.min(this.items.length, seq - first.seq + 1);
    for (let i = 0; i < n; i++) this.bytes -= this.items[i]!.bytes;
    this.items = this.items.slice(n);
  }

  clear(): void {
    this.items = [];
    this.bytes = 0;
  }
}

/** The stored form of a message: per-socket fields removed, as it would decode from disk. */
export function storedForm(msg: Message): Message {
  if (msg.seq === undefined && msg.stream === undefined) return msg;
  const { seq: _seq, stream: _stream, ...rest } = msg;
  return rest;
}
