// The worker side of ThreadedAmqpSink (amqp-thread.ts): one AmqpTransport on this thread's own event
// loop, driven by messages from the broker's thread. Loaded only as a worker entry, never imported.
import { parentPort, workerData } from "node:worker_threads";
import { HeraldError } from "../errors.js";
import { AmqpTransport } from "./amqp.js";
import type { AmqpTransportOptions } from "./amqp-options.js";
import type { ToWorker, WireError } from "./amqp-thread.js";

if (parentPort === null) throw new Error("amqp-thread-worker.js runs only as a worker thread");
const port = parentPort;

const sink = new AmqpTransport({
  ...(workerData as Omit<AmqpTransportOptions, "log">),
  log: (level, message, fields) => {
    try {
      port.postMessage({ op: "log", level, message, fields });
    } catch {
      // A field that cannot be cloned must not turn a log line into an exception in the publisher.
      const text = Object.fromEntries(Object.entries(fields ?? {}).map(([k, v]) => [k, String(v)]));
      port.postMessage({ op: "log", level, message, fields: text });
    }
  },
});

// health() is synchronous on the broker's side: it reads the last snapshot sent from here.
const postHealth = (): void => port.postMessage({ op: "health", health: sink.health() });
const ticker = setInterval(postHealth, 250);

function wireError(err: unknown): WireError {
  if (err instanceof HeraldError) return { code: err.code, message: err.message, retryable: err.retryable };
  return { code: "TRANSPORT", message: err instanceof Error ? err.message : String(err), retryable: true };
}

/** The outcome of one request, with the health it left behind (a caller reads counters right after). */
function reply(id: number, work: Promise<void>): void {
  work.then(
    () => port.postMessage({ op: "done", id, health: sink.health() }),
    (err: unknown) => port.postMessage({ op: "done", id, health: sink.health(), error: wireError(err) }),
  );
}

port.on("message", (m: ToWorker) => {
  switch (m.op) {
    case "open":
      reply(m.id, sink.open());
      return;
    case "send":
      reply(
        m.id,
        sink.sendEncoded(
          m.items.map((i) => ({
            id: i.id,
            pub: {
              routingKey: i.routingKey,
              content: Buffer.from(m.bytes, i.offset, i.length),
              properties: i.properties,
            },
          })),
        ),
      );
      return;
    case "close":
      clearInterval(ticker);
      void sink.close().finally(() => {
        port.postMessage({ op: "done", id: m.id, health: sink.health() });
        port.close();
      });
      return;
  }
});
postHealth();
