import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { HeraldError } from "../../src/errors.js";
import type { Transport } from "../../src/transport/types.js";
import { quietLogger } from "../../src/transport/zeromq-common.js";
import { ZmqPublishTransport } from "../../src/transport/zeromq-pub.js";
import { ZmqSubscribeTransport } from "../../src/transport/zeromq-sub.js";
import { type TransportPair, transportContract } from "./transport-contract.js";

const LIMIT = 64 * 1024;
const dir = mkdtempSync(join(tmpdir(), "herald-zmq-contract-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Bind a new publisher on an endpoint the previous one just released (its close is asynchronous in libzmq). */
async function openWithRetry(make: () => ZmqPublishTransport): Promise<ZmqPublishTransport> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const t = make();
    try {
      await t.open();
      return t;
    } catch (err) {
      await t.close();
      const inUse = err instanceof HeraldError && err.details["zmqCode"] === "EADDRINUSE";
      if (!inUse || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function zmqPair(format: "herald" | "legacy", bindTo: () => string) {
  return async (): Promise<TransportPair> => {
    const pubOptions = (endpoint: string) => ({
      name: `pub-${format}`,
      endpoint,
      format,
      linger: 0,
      sendHighWaterMark: 100_000,
      maxMessageBytes: LIMIT,
    });
    const sender = new ZmqPublishTransport(pubOptions(bindTo()));
    await sender.open();
    const endpoint = sender.lastEndpoint!;
    const receiver = new ZmqSubscribeTransport({
      name: `sub-${format}`,
      endpoints: [endpoint],
      format,
      linger: 0,
      reconnectInterval: 20,
      reconnectMaxInterval: 200,
      logger: quietLogger,
    });
    const made: Transport[] = [sender, receiver];
    return {
      sender,
      receiver,
      restartSender: async () => {
        const t = await openWithRetry(() => new ZmqPublishTransport(pubOptions(endpoint)));
        made.push(t);
        return t;
      },
      cleanup: async () => {
        for (const t of made) await t.close();
      },
    };
  };
}

let ipcCount = 0;
const tcp = () => "tcp://127.0.0.1:*";
const ipc = () => `ipc://${join(dir, `pub-${++ipcCount}.sock`)}`;

transportContract("zeromq herald over tcp", zmqPair("herald", tcp), {
  format: "herald",
  maxMessageBytes: LIMIT,
});
transportContract("zeromq legacy (fedmsg) over tcp", zmqPair("legacy", tcp), {
  format: "legacy",
  maxMessageBytes: LIMIT,
});
transportContract("zeromq herald over ipc", zmqPair("herald", ipc), {
  format: "herald",
  maxMessageBytes: LIMIT,
});
