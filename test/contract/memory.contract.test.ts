import { MemoryBus } from "../../src/transport/memory.js";
import { transportContract } from "./transport-contract.js";

function memoryPair(limit?: number) {
  return async () => {
    const bus = new MemoryBus();
    if (limit !== undefined) bus.maxMessageBytes = limit;
    const sender = bus.transport("sender");
    const receiver = bus.transport("receiver");
    const made = [sender, receiver];
    return {
      sender,
      receiver,
      restartSender: async () => {
        const t = bus.transport("sender-restarted");
        made.push(t);
        return t;
      },
      cleanup: async () => {
        for (const t of made) await t.close();
      },
    };
  };
}

transportContract("memory", memoryPair());
transportContract("memory with a size limit", memoryPair(64 * 1024), { maxMessageBytes: 64 * 1024 });
