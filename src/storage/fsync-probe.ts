import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

export interface FsyncTiming {
  p50Us: number;
  p99Us: number;
}

/**
 * Measure what one durable commit costs on the file system holding `dir`: write 4 KiB at offset 0 of a
 * scratch file then fsync, `samples` times. Every sample overwrites the same block (the file never grows,
 * so no size or allocation metadata changes: an overwrite, not an append). The scratch file is removed
 * afterwards. Reported next to benchmark results ("fsync of a 4 KiB overwrite", bench/), because outbox
 * throughput with synchronous=full is bounded by this number.
 */
export function measureFsync(dir: string, samples = 100): FsyncTiming {
  const scratch = mkdtempSync(join(dir, ".herald-fsync-"));
  const fd = openSync(join(scratch, "probe"), "w", 0o600);
  const block = Buffer.alloc(4096, 0x68);
  const micros: number[] = [];
  try {
    for (let i = 0; i < Math.max(1, samples); i++) {
      const start = process.hrtime.bigint();
      writeSync(fd, block, 0, block.length, 0);
      fsyncSync(fd);
      micros.push(Number(process.hrtime.bigint() - start) / 1000);
    }
  } finally {
    closeSync(fd);
    rmSync(scratch, { recursive: true, force: true });
  }
  micros.sort((a, b) => a - b);
  return { p50Us: Math.round(percentile(micros, 0.5)), p99Us: Math.round(percentile(micros, 0.99)) };
}

function percentile(sorted: readonly number[], q: number): number {
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx] ?? 0;
}
