import { createReadStream, createWriteStream, openSync, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import type { ReceivedMessage } from "../client/subscriber.js";
import { HeraldError, ProtocolError } from "../errors.js";
import type { WireFormat } from "../transport/types.js";
import { decodeEnvelope, encodeEnvelope } from "../wire/herald.js";
import { decodeLegacyEnvelope } from "../wire/legacy.js";
import type { Message } from "../wire/message.js";

/**
 * Cassettes: real traffic recorded as JSON lines, one message per line, keeping the exact envelope bytes
 * as received (base64) so replays reproduce what subscribers saw, signatures included.
 *
 *   {"v":1,"at":"2026-...Z","format":"herald","via":"tcp://...","topic":"...","raw":"<base64>"}
 *
 * `format` is "herald" or "legacy". Messages received in another format (fedora-messaging from AMQP,
 * whose raw bytes are only the AMQP body, without the id, topic and headers) are stored as herald
 * envelopes of the decoded message, so every line can be read back.
 */
export interface CassetteEntry {
  v: 1;
  at: string;
  format: CassetteFormat;
  via: string;
  topic: string;
  raw: string;
}

/** The formats a cassette line can hold: the ones whose bytes are a whole message. */
export type CassetteFormat = Extract<WireFormat, "herald" | "legacy">;

export interface RecorderOptions {
  /** Called once when writing to the file fails; recording has stopped and close() will reject. */
  onError?: (error: HeraldError) => void;
}

export class Recorder {
  private readonly out: WriteStream;
  private failure: HeraldError | undefined;
  private closing: Promise<void> | undefined;
  /** Lines accepted by write(). */
  count = 0;
  /** Lines the operating system took (the rest were buffered when a write failed). */
  written = 0;

  constructor(
    readonly path: string,
    private readonly options: RecorderOptions = {},
  ) {
    // Opened here, not by the stream: a path that cannot be written throws now (a clear error for the
    // caller) instead of an 'error' event nobody listens to yet.
    this.out = createWriteStream(path, { fd: openSync(path, "a") });
    // A later write can still fail (ENOSPC, EIO): without a listener that would crash the process.
    this.out.on("error", (err) => this.fail(err));
  }

  /** The write error, once writing failed. */
  get error(): HeraldError | undefined {
    return this.failure;
  }

  write(m: ReceivedMessage): void {
    if (this.failure) throw this.failure;
    // Bytes that are a whole envelope are kept as received; others are re-encoded as herald's.
    const whole = m.raw !== undefined && m.format !== "fedora-messaging";
    const entry: CassetteEntry = {
      v: 1,
      at: new Date().toISOString(),
      format: whole && m.format !== "fedora-messaging" ? m.format : "herald",
      via: m.via,
      topic: m.message.topic,
      raw: (whole && m.raw ? m.raw : encodeEnvelope(m.message)).toString("base64"),
    };
    this.out.write(`${JSON.stringify(entry)}\n`, (err) => {
      if (!err) this.written++;
    });
    this.count++;
  }

  /** Flush and close the file; rejects with the write error (naming the file) if one happened. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve, reject) => {
      const done = (): void => (this.failure ? reject(this.failure) : resolve());
      if (this.out.closed) return done();
      this.out.once("close", done);
      this.out.end();
    });
    return this.closing;
  }

  private fail(err: NodeJS.ErrnoException): void {
    if (this.failure) return;
    // Node's message starts with the code: "ENOSPC: no space left on device, write".
    this.failure = new HeraldError(
      "STORAGE_ERROR",
      `cannot write cassette ${this.path} (${err.message}); ${this.written} of ${this.count} messages were ` +
        "written: free space on its file system or record to another file",
      { cause: err, details: { path: this.path } },
    );
    this.options.onError?.(this.failure);
  }
}

/**
 * Read a cassette back as messages (decoded from the recorded bytes), in order. A line that is not a
 * cassette entry throws a ProtocolError naming `file:line`.
 */
export async function* readCassette(
  path: string,
): AsyncGenerator<{ entry: CassetteEntry; message: Message }> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === "") continue;
    const entry = parseEntry(line, `${path}:${n}`);
    yield { entry, message: decodeEntry(entry, `${path}:${n}`) };
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function parseEntry(line: string, where: string): CassetteEntry {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    throw new ProtocolError(`${where}: not a cassette line (${(err as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new ProtocolError(
      `${where}: not a cassette entry: expected a JSON object, got ${line.slice(0, 40)}`,
    );
  const e = v as Partial<Record<keyof CassetteEntry, unknown>>;
  if (e.v !== 1 || typeof e.raw !== "string")
    throw new ProtocolError(`${where}: not a herald cassette entry (v 1 with raw bytes)`);
  if (e.format !== "herald" && e.format !== "legacy")
    throw new ProtocolError(
      `${where}: format ${JSON.stringify(e.format)} cannot be replayed: cassette lines hold "herald" or ` +
        `"legacy" envelopes (record it again with this version of herald)`,
    );
  // Buffer.from() skips characters that are not base64: check, or garbage would reach the decoder.
  if (e.raw.length % 4 !== 0 || !BASE64.test(e.raw)) throw new ProtocolError(`${where}: raw is not base64`);
  return v as CassetteEntry;
}

function decodeEntry(entry: CassetteEntry, where: string): Message {
  const bytes = Buffer.from(entry.raw, "base64");
  try {
    return entry.format === "legacy" ? decodeLegacyEnvelope(bytes).message : decodeEnvelope(bytes);
  } catch (err) {
    const why = (err as Error).message;
    throw new ProtocolError(`${where}: the recorded ${entry.format} envelope does not decode: ${why}`, {
      cause: err,
    });
  }
}
