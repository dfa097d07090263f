// Raw limit: a ROUTER that answers every request at once with an ack, no parsing, no storage.
// With --fsync DIR it first overwrites 4 KiB at offset 0 of DIR/probe and fsyncs it, as the fsync probe
// (measureFsync) does: the durable round trip measured as one thing, next to the sum of its two parts
// (bench/figures/raw.mjs).
// --ack-results N: the ack holds N results (herald's reply shape for a request of N messages; default 1),
// so a raw reference for batched requests carries herald's frames in both directions.
// usage: raw-router.mjs --bind ipc:///tmp/x.sock [--fsync DIR] [--ack-results N]
import { fsyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Router } from "zeromq";
import { args, emit } from "./args.mjs";

const a = args();
const sock = new Router({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 });
await sock.bind(a.bind);
emit({ ready: sock.lastEndpoint });
// Same-length fields as herald's results (UUIDv7 id, ISO time) so the reply has herald's size.
const ack = Buffer.from(
  JSON.stringify({
    results: Array.from({ length: Number(a["ack-results"] ?? 1) }, (_, k) => ({
      ok: true,
      id: `0190b6a0-0000-7000-8000-${String(k).padStart(12, "0")}`,
      seq: k + 1,
      accepted_at: new Date(0).toISOString(),
      duplicate: false,
    })),
  }),
);
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
if (a.fsync) {
  const fd = openSync(join(a.fsync, "probe"), "w", 0o600);
  const block = Buffer.alloc(4096, 0x68);
  for await (const [id, proto, rid] of sock) {
    writeSync(fd, block, 0, block.length, 0);
    fsyncSync(fd);
    await sock.send([id, proto, rid, ack]);
  }
} else {
  for await (const [id, proto, rid] of sock) await sock.send([id, proto, rid, ack]);
}
