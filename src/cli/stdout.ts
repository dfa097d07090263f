/**
 * The CLI's standard output. Node builds process.stdout on first use, and building it loads node:stream
 * (for a pipe or a terminal node:net and node:tty too): ~5 ms of a one-shot `herald publish`, a tenth
 * of what it costs beyond starting Node (bench figure 7). So lines go to descriptor 1 with fs.writeSync,
 * which is what process.stdout does on Linux anyway: writes to files, pipes and terminals are synchronous.
 *
 * The exception is a descriptor that cannot take the bytes now: a non-blocking pipe (its flag is shared
 * with whoever made it) that is full returns EAGAIN. That line's rest and every later line then go
 * through process.stdout, in order, which queues them; any other error goes the same way, so the stream
 * reports it. EPIPE (the reader is gone) ends the output, and by default the process (see EXIT_PIPE).
 */
import fs from "node:fs";

type WriteSync = (fd: number, buffer: Uint8Array, offset: number) => number;

/** Exit status when the reader went away (a shell's for a writer killed by SIGPIPE: 128 + 13). */
export const EXIT_PIPE = 141;

/**
 * A writer of text to `fd`, handing over to `stream()` for good at the first failed write. When the
 * reader is gone (EPIPE: `herald tail | head -3`), nothing more is written and `onClosed` runs: by
 * default the process ends as a SIGPIPE would end it, quietly, instead of with an unhandled 'error' event.
 */
export function descriptorWriter(
  fd: number,
  stream: () => NodeJS.WritableStream,
  writeSync: WriteSync = fs.writeSync,
  onClosed: () => void = () => process.exit(EXIT_PIPE),
): (text: string) => void {
  let direct = true;
  let closed = false;
  let handed: NodeJS.WritableStream | undefined;
  const readerGone = (): void => {
    if (closed) return;
    closed = true;
    onClosed();
  };
  return (text) => {
    if (closed) return;
    const bytes = Buffer.from(text);
    let offset = 0;
    if (direct) {
      try {
        while (offset < bytes.length) offset += writeSync(fd, bytes, offset);
        return;
      } catch (err) {
        if (isEpipe(err)) return readerGone();
        direct = false;
      }
    }
    if (handed === undefined) {
      handed = stream();
      handed.on("error", (err: unknown) => {
        if (!isEpipe(err)) throw err;
        readerGone();
      });
    }
    handed.write(bytes.subarray(offset));
  };
}

function isEpipe(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === "EPIPE";
}

const writeStdout = descriptorWriter(1, () => process.stdout);

/** Write one line to standard output. */
export function out(line: string): void {
  writeStdout(`${line}\n`);
}
