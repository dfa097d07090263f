/**
 * The CLI's standard output. Node builds process.stdout on first use, and building it loads node:stream
 * (for a pipe or a terminal node:net and node:tty too): ~5 ms of a one-shot `herald publish`, a tenth
 * of what it costs beyond starting Node (bench figure 7). So lines go to descriptor 1 with fs.writeSync,
 * which is what process.stdout does on Linux anyway: writes to files, pipes and terminals are synchronous.
 *
 * The exception is a descriptor that cannot take the bytes now: a non-blocking pipe (its flag is shared
 * with whoever made it) that is full returns EAGAIN. That line's rest and every later line then go
 * through process.stdout, in order, which queues them; any other error goes the same way, so the stream
 * reports it (EPIPE, say) exactly as before.
 */
import fs from "node:fs";

type WriteSync = (fd: number, buffer: Uint8Array, offset: number) => number;

/** A writer of text to `fd`, handing over to `stream()` for good at the first failed write. */
export function descriptorWriter(
  fd: number,
  stream: () => NodeJS.WritableStream,
  writeSync: WriteSync = fs.writeSync,
): (text: string) => void {
  let direct = true;
  return (text) => {
    const bytes = Buffer.from(text);
    let offset = 0;
    if (direct) {
      try {
        while (offset < bytes.length) offset += writeSync(fd, bytes, offset);
        return;
      } catch {
        direct = false;
      }
    }
    stream().write(bytes.subarray(offset));
  };
}

const writeStdout = descriptorWriter(1, () => process.stdout);

/** Write one line to standard output. */
export function out(line: string): void {
  writeStdout(`${line}\n`);
}
