// Connects sockets over and over while V8's sampler interrupts the process every 10 us
// (run under `node --cpu-prof --cpu-prof-interval 10`): the signal storm behind EINTR from libzmq.
// usage: node signal_storm.mjs N MAX_ROUNDS
// Each round makes N sockets of each kind in turn (raw zeromq.js, herald client, subscribe and publish
// transports), so all share the storm; rounds go on until raw zeromq.js has met EINTR (a busy machine
// delivers fewer samples) or MAX_ROUNDS. Prints {"rounds": R, "done": {...}, "failures": {mode: {code: n}}}.
import { HeraldClient } from "../../dist/client/publisher.js";
import { ZmqPublishTransport } from "../../dist/transport/zeromq-pub.js";
import { ZmqSubscribeTransport } from "../../dist/transport/zeromq-sub.js";
import { zmq } from "../../dist/util/zeromq.js";

const [countArg, roundsArg] = process.argv.slice(2);
const MODES = ["raw", "client", "subscriber", "publisher"];
const endpoint = "tcp://127.0.0.1:1"; // nobody listens: connect only queues the connection
const failures = Object.fromEntries(MODES.map((m) => [m, {}]));
const done = Object.fromEntries(MODES.map((m) => [m, 0]));
const fail = (mode, err) => {
  const key = err?.code ?? String(err);
  if (process.env.STORM_STACKS) console.error(err?.stack);
  failures[mode][key] = (failures[mode][key] ?? 0) + 1;
};

async function once(mode) {
  if (mode === "raw") {
    const s = new zmq.Dealer({ linger: 0 });
    try {
      s.connect(endpoint);
    } finally {
      s.close();
    }
  } else if (mode === "client") {
    const client = new HeraldClient({ endpoint, timeoutMs: 1, retries: 0 });
    try {
      await client.status();
    } catch (err) {
      if (err?.code !== "TIMEOUT") throw err; // nobody answers: TIMEOUT is the expected outcome
    } finally {
      await client.close();
    }
  } else if (mode === "publisher") {
    const t = new ZmqPublishTransport({ name: "storm", endpoint: "tcp://127.0.0.1:*", format: "herald" });
    try {
      await t.open();
    } finally {
      await t.close();
    }
  } else {
    const t = new ZmqSubscribeTransport({ name: "storm", endpoints: [endpoint], format: "herald" });
    const sub = t.receive({ patterns: ["a.#", "b.#"] });
    await sub.close();
    await t.close();
  }
}

const n = Number(countArg);
let rounds = 0;
while (rounds < Number(roundsArg) && !failures.raw.EINTR) {
  rounds++;
  for (const mode of MODES) {
    for (let i = 0; i < n; i++) {
      try {
        await once(mode);
      } catch (err) {
        fail(mode, err);
      }
      done[mode]++;
      // libzmq releases a closed socket's descriptors on its own thread: give it time, or run out of them.
      await new Promise((r) => (i % 100 === 99 ? setTimeout(r, 20) : setImmediate(r)));
    }
  }
}
console.log(JSON.stringify({ rounds, done, failures }));
