import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Dispatcher } from "../src/broker/dispatcher.js";
import { ClosedError } from "../src/errors.js";
import type { Routed } from "../src/shim/bridged.js";
import { type ShimRouter, ShimSink } from "../src/shim/feed.js";
import { Outbox } from "../src/storage/index.js";
import { createLogger } from "../src/util/log.js";
import { createMessage } from "../src/wire/message.js";
import { tempDir } from "./fixtures/outbox-helpers.js";
import { waitFor } from "./helpers/broker.js";

/**
 * Plays the shim's bridged services: a service in `unbound` holds its messages (port not bound yet),
 * the others "serve" them at once into `out` as `<service><n>`.
 */
class FakeRouter implements ShimRouter {
  readonly out: string[] = [];
  readonly held = new Map<string, Routed[]>();
  constructor(readonly unbound = new Set<string>()) {}

  route(batch: readonly Routed[], served?: (owner: string, seq: number) => boolean): void {
    for (const r of batch) {
      const svc = r.message.topic.split(".")[1]!;
      if (served && r.seq !== undefined && served(svc, r.seq)) continue;
      if (!this.unbound.has(svc)) this.out.push(`${svc}${String(r.message.body["n"])}`);
      else this.held.set(svc, [...(this.held.get(svc) ?? []), r]);
    }
  }

  bind(svc: string): void {
    this.unbound.delete(svc);
    for (const r of this.held.get(svc) ?? []) this.out.push(`${svc}${String(r.message.body["n"])}`);
    this.held.delete(svc);
  }

  heldFrom(): Map<string, number> {
    const m = new Map<string, number>();
    for (const [svc, list] of this.held) if (list[0]?.seq !== undefined) m.set(svc, list[0].seq);
    return m;
  }
}

/** Message n belongs to service a (even n) or b (odd n). */
function traffic(from: number, count: number) {
  return Array.from({ length: count }, (_, i) => {
    const n = from + i;
    return createMessage({ topic: `svc.${n % 2 === 0 ? "a" : "b"}.built`, body: { n } });
  });
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("the in-broker shim's sink across restarts (outbox, dispatcher, sink)", () => {
  let path = "";

  /** One broker run: open the outbox, start the sink's dispatcher, let `body` work, stop cleanly. */
  async function run(router: FakeRouter, body: (box: Outbox, d: Dispatcher) => Promise<void>) {
    const box = Outbox.open({ path, failpoint: "" });
    const sink = new ShimSink(router);
    const d = new Dispatcher(sink, box, createLogger({ level: "error" }));
    d.start();
    try {
      await body(box, d);
    } finally {
      await sink.close();
      await d.stop();
      box.close();
    }
  }

  it("keeps the held messages for the next run and serves nothing twice, over two restarts", async () => {
    const { dir, cleanup } = tempDir();
    cleanups.push(cleanup);
    path = join(dir, "outbox.db");
    const first = new FakeRouter(new Set(["b"]));
    await run(first, async (box, d) => {
      await box.append(traffic(0, 10));
      expect(await waitFor(() => d.status(10).cursor === 10, 5000)).toBe(true);
      expect(first.out).toEqual(["a0", "a2", "a4", "a6", "a8"]);
      // b's first message is seq 2: the persisted cursor stays before it.
      expect(box.stats().sinks["legacy-shim"]?.cursor).toBe(1);
    });

    // Second run: b's port is still not bound. a's messages already went out; b's are held again.
    const second = new FakeRouter(new Set(["b"]));
    await run(second, async (box, d) => {
      expect(await waitFor(() => second.held.get("b")?.length === 5, 5000)).toBe(true);
      await box.append(traffic(10, 2));
      expect(await waitFor(() => d.status(12).cursor === 12, 5000)).toBe(true);
      expect(second.out).toEqual(["a10"]);
    });

    // Third run: b's port is ours at last. Every b message goes out once, no a message again.
    const third = new FakeRouter(new Set(["b"]));
    await run(third, async (_box, d) => {
      expect(await waitFor(() => d.status(12).cursor === 12, 5000)).toBe(true);
      third.bind("b");
      expect(third.out).toEqual(["b1", "b3", "b5", "b7", "b9", "b11"]);
    });

    // After a clean stop with nothing held, the cursor is at the head and nothing is routed again.
    const fourth = new FakeRouter();
    await run(fourth, async (box) => {
      expect(box.stats().sinks["legacy-shim"]?.cursor).toBe(12);
      await new Promise((r) => setTimeout(r, 50));
      expect(fourth.out).toEqual([]);
    });
  });
});

describe("ShimSink checkpoints", () => {
  it("after a crash routes the last `rewind` messages again and what was held, and skips the rest", () => {
    const router = new FakeRouter();
    const sink = new ShimSink(router);
    const state = JSON.stringify({ through: 100, held: { b: 50 } });
    expect(sink.resume(state, 49, 20)).toBe(49);
    const rows = traffic(0, 60).map((message, i) => ({ seq: 41 + i, acceptedAt: 0, message, bytes: 1 }));
    void sink.sendStored(rows);
    const seqOf = (name: string) => 41 + Number(name.slice(1));
    // a's messages from seq 81 on (the rewind), b's from its held seq 50 on.
    expect(router.out.filter((n) => n.startsWith("a")).map(seqOf)[0]).toBe(81);
    expect(router.out.filter((n) => n.startsWith("b")).map(seqOf)[0]).toBe(50);
    expect(router.out).toHaveLength(10 + 26);
  });

  it("with no saved state (an older herald's outbox, or unreadable) resumes like any sink", () => {
    const sink = new ShimSink(new FakeRouter());
    expect(sink.resume(undefined, 500, 100)).toBe(400);
    expect(sink.resume("{not json", 500, 0)).toBe(500);
    expect(sink.resume(JSON.stringify({ through: -1, held: {} }), 500, 0)).toBe(500);
    expect(sink.resume(JSON.stringify({ through: 7, held: { b: "x" } }), 500, 0)).toBe(500);
  });

  it("keeps the cursor back by at most maxPin messages, and says so once", () => {
    const lines: string[] = [];
    const router = new FakeRouter(new Set(["b"]));
    const sink = new ShimSink(router, { maxPin: 10, log: createLogger({ write: (l) => lines.push(l) }) });
    const rows = traffic(0, 2).map((message, i) => ({ seq: 2 + i, acceptedAt: 0, message, bytes: 1 }));
    void sink.sendStored(rows); // b held from seq 3
    expect(sink.checkpoint(5).cursor).toBe(2);
    expect(sink.checkpoint(50).cursor).toBe(40);
    expect(sink.checkpoint(60).cursor).toBe(50);
    expect(lines.filter((l) => l.includes("no longer survive a restart"))).toHaveLength(1);
    expect(JSON.parse(sink.checkpoint(60).state)).toEqual({ through: 60, held: { b: 3 } });
  });

  it("once frozen refuses messages and checkpoints what was held when it froze", async () => {
    const router = new FakeRouter(new Set(["b"]));
    const sink = new ShimSink(router);
    await sink.sendStored([{ seq: 7, acceptedAt: 0, message: traffic(1, 1)[0]!, bytes: 1 }]);
    sink.freeze();
    router.held.clear(); // the shim closes its services after freezing the sink
    expect(sink.checkpoint(9)).toEqual({ cursor: 6, state: JSON.stringify({ through: 9, held: { b: 7 } }) });
    await expect(sink.sendStored([])).rejects.toBeInstanceOf(ClosedError);
  });
});
