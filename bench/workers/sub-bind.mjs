// A bound SUB that drains everything (the relay that fedmsg-logger's PUB connects to).
// usage: sub-bind.mjs --bind tcp://127.0.0.1:PORT      prints {"bound": EP}, then {"got": N} per message
import { Subscriber } from "zeromq";
import { args, emit } from "./args.mjs";

const a = args();
const sock = new Subscriber({ linger: 0 });
await sock.bind(a.bind);
sock.subscribe();
emit({ bound: sock.lastEndpoint });
let n = 0;
for await (const _ of sock) emit({ got: ++n });
