import { describe, expect, it } from "vitest";
import { MemoryBus } from "../src/transport/memory.js";
import { createMessage } from "../src/wire/message.js";

describe("MemoryBus", () => {
  it("keeps in history what was sent, even when the sender reuses its body object", async () => {
    const bus = new MemoryBus();
    const tx = bus.transport("tx");
    await tx.open();
    const body = { n: 0 };
    for (let i = 1; i <= 3; i++) {
      body.n = i;
      await tx.send([createMessage({ topic: "t.x", body })]);
    }
    expect(bus.history.map((m) => m.body["n"])).toEqual([1, 2, 3]);
    await tx.close();
  });

  it("detaches a closed transport's subscriptions: it stops counting and ends its iterators", async () => {
    const bus = new MemoryBus();
    const tx = bus.transport("tx");
    const rx = bus.transport("rx");
    await tx.open();
    await rx.open();
    const it = rx.receive({ patterns: ["t.#"] })[Symbol.asyncIterator]();
    await tx.send([createMessage({ topic: "t.x", body: { n: 1 } })]);
    expect((await it.next()).value?.message.body["n"]).toBe(1);
    await rx.close();
    expect(rx.health().received).toBe(1);
    await tx.send([createMessage({ topic: "t.x", body: { n: 2 } })]);
    expect(rx.health().received).toBe(1);
    expect((await it.next()).done).toBe(true);
    await tx.close();
  });
});
