// Raw limit: a ROUTER that answers every request at once with a small ack, no parsing, no storage.
// With --fsync DIR it first writes 4 KiB to DIR/probe and fsyncs it, as the fsync probe does: the durable
// round trip measured as one thing, next to the sum of its two parts (bench/figures/raw.mjs).
// usage: raw-router.mjs --bind ipc:///tmp/x.sock [--fsync DIR]
import { fsyncSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { Router } from "zeromq";
import { args, emit } from "./args.mjs";

const a = args();
const sock = new Router({ linger: 0, sendHighWaterMark: 0, receiveHighWaterMark: 0 });
await sock.bind(a.bind);
emit({ ready: sock.lastEndpoint });
const ack = Buffer.from(
  JSON.stringify({ results: [{ ok: true, id: "x", seq: 1, accepted_at: "", duplicate: false }] }),
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
