import { createReadStream, createWriteStream, openSync, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import type { ReceivedMessage } from "../client/subscriber.js";
import { ProtocolError } from "../errors.js";
import type { WireFormat } from "../transport/types.js";
import { decodeEnvelope, encodeEnvelope } from "../wire/herald.js";
import { decodeLegacyEnvelope } from "../wire/legacy.js";
import type { Message } from "../wire/message.js";

/**
 * Cassettes: real traffic recorded as JSON lines, one message per line, keeping the exact envelope bytes
 * as received (base64) so replays reproduce what subscribers saw, signatures included.
 *
 *   {"v":1,"at":"2026-...Z","format":"herald","via":"tcp://...","topic":"...","raw":"<base64>"}
 */
export interface CassetteEntry {
  v: 1;
  at: string;
  format: WireFormat;
  via: string;
  topic: string;
  raw: string;
}

export class Recorder {
  private readonly out: WriteStream;
  count = 0;

  constructor(path: string) {
    // Opened here, not by the stream: a path that cannot be written throws now (a clear error for the
    // caller) instead of an 'error' event nobody listens to yet.
    this.out = createWriteStream(path, { fd: openSync(path, "a") });
  }

  write(m: ReceivedMessage): void {
    const raw = m.format === "herald" || !m.raw ? (m.raw ?? encodeEnvelope(m.message)) : m.raw;
    const entry: CassetteEntry = {
      v: 1,
      at: new Date().toISOString(),
      format: m.raw ? m.format : "herald",
      via: m.via,
      topic: m.message.topic,
      raw: raw.toString("base64"),
    };
    this.out.write(`${JSON.stringify(entry)}\n`);
    this.count++;
  }

  close(): Promise<void> {
    return new Promise((res) => this.out.end(res));
  }
}

/** Read a cassette back as messages (decoded from the recorded bytes), in order. */
export async function* readCassette(
  path: string,
): AsyncGenerator<{ entry: CassetteEntry; message: Message }> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === "") continue;
    let entry: CassetteEntry;
    try {
      entry = JSON.parse(line) as CassetteEntry;
    } catch (err) {
      throw new ProtocolError(`${path}:${n}: not a cassette line (${(err as Error).message})`);
    }
    if (entry.v !== 1 || typeof entry.raw !== "string")
      throw new ProtocolError(`${path}:${n}: not a herald cassette entry (v 1 with raw bytes)`);
    const bytes = Buffer.from(entry.raw, "base64");
    const message = entry.format === "legacy" ? decodeLegacyEnvelope(bytes).message : decodeEnvelope(bytes);
    yield { entry, message };
  }
}
