// Raw limit: a ROUTER that answers every request at once with a small ack, no parsing, no storage.
// usage: raw-router.mjs --bind ipc:///tmp/x.sock
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
for await (const [id, proto, rid] of sock) await sock.send([id, proto, rid, ack]);
