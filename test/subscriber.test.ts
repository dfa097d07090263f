import { Worker } from "node:worker_threads";
import { afterEach, describe, expect, it } from "vitest";
import { subscribe } from "../src/client/index.js";
import { type Gap, Subscriber } from "../src/client/subscriber.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { ScriptedSource } from "./helpers/fake-source.js";
import { ROOT } from "./helpers/serve.js";

async function take(sub: Subscriber, n: number): Promise<number[]> {
  const out: number[] = [];
  for await (const m of sub) {
    out.push(m.message.body["seq"] as number);
    if (out.length >= n) break;
  }
  return out;
}

describe("subscriber", () => {
  /** A subscriber on one scripted source, recording the gaps and restarts it reports. */
  function watched(via: string) {
    const src = new ScriptedSource(via);
    const gaps: Gap[] = [];
    const restarts: string[] = [];
    const sub = new Subscriber({
      sources: [src],
      onGap: (g) => gaps.push(g),
      onRestart: (s) => restarts.push(s),
    });
    return { src, gaps, restarts, sub };
  }

  it("reports every gap in a stream's sequence, never silently", async () => {
    const { src, gaps, restarts, sub } = watched("a");
    for (const seq of [1, 2, 3, 7, 8, 10]) src.push("t.x", seq);
    src.push("t.x", 1, "s1"); // publisher restarted: its sequence starts again
    src.push("t.x", 2, "s1");
    expect(await take(sub, 8)).toEqual([1, 2, 3, 7, 8, 10, 1, 2]);
    expect(gaps.map((g) => [g.expected, g.received, g.missed])).toEqual([
      [4, 7, 3],
      [9, 10, 1],
    ]);
    expect(restarts).toEqual(["s1"]);
    expect(sub.stats()).toMatchObject({ gaps: 2, missed: 4 });
    await sub.close();
  });

  it("delivers each id once across sources and tracks streams separately", async () => {
    const a = new ScriptedSource("a");
    const b = new ScriptedSource("b");
    const gaps: Gap[] = [];
    const sub = new Subscriber({ sources: [a, b], onGap: (g) => gaps.push(g) });
    a.push("t.x", 1, "sa", "id-1");
    b.push("t.x", 1, "sb", "id-1");
    a.push("t.x", 2, "sa", "id-2");
    b.push("t.x", 2, "sb", "id-2");
    b.push("t.x", 3, "sb", "id-3");
    const ids: string[] = [];
    for await (const m of sub) {
      ids.push(m.message.id);
      if (ids.length === 3) break;
    }
    expect(ids).toEqual(["id-1", "id-2", "id-3"]);
    expect(sub.stats().duplicates).toBe(2);
    expect(gaps).toEqual([]);
  });

  it("a publisher restarted on the same socket: a restart, and what its new stream sent before as a gap", async () => {
    const { src, gaps, restarts, sub } = watched("tcp://h:1");
    src.push("t.x", 50, "run1"); // joined a running publisher: no gap for what came before us
    src.push("t.x", 51, "run1");
    src.push("t.x", 3, "run2"); // restarted; seq 1 and 2 of the new run never reached us
    src.push("t.x", 4, "run2");
    src.push("t.x", 1, "run3"); // restarted again, nothing missed
    expect(await take(sub, 5)).toEqual([50, 51, 3, 4, 1]);
    expect(restarts).toEqual(["run2", "run3"]);
    expect(gaps).toEqual([{ stream: "run2", via: "tcp://h:1", expected: 1, received: 3, missed: 2 }]);
    await sub.close();
  });

  it("dual format: a legacy copy of an id that is not a UUIDv7 (written <YEAR>-<id>) is a duplicate", async () => {
    const h = new ScriptedSource("herald");
    const l = new ScriptedSource("legacy");
    const sub = new Subscriber({ sources: [h, l] });
    h.push("t.x", 1, "s", "build-42");
    l.pushLegacy("t.x", "2026-build-42", 2); // the same message by the legacy socket
    l.pushLegacy("t.x", "2026-f81d4fae-7dec-11d0-a765-00a0c91e6bf6", 3); // fedmsg's own id form
    h.push("t.x", 2, "s", "2026-f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
    l.pushLegacy("t.x", "2026-other", 4); // a different message
    const ids: string[] = [];
    for await (const m of sub) {
      ids.push(m.message.id.replace(/^2026-/, ""));
      if (ids.length === 3) break;
    }
    // Each message once, whichever copy came first.
    expect(ids.sort()).toEqual(["build-42", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "other"]);
    expect(sub.stats()).toMatchObject({ delivered: 3, duplicates: 2 });
    await sub.close();
  });

  it("subscribe() to a format with no socket is a ConfigError, not an iterator that never yields", () => {
    expect(() =>
      subscribe(["#"], { formats: ["legacy"], endpoints: { herald: ["tcp://127.0.0.1:1"] } }),
    ).toThrow(/no legacy-format PUB socket to subscribe to/);
    // A format no PUB socket can have: said as such (the old message advised adding one to broker.publish).
    const formats = ["fedora-messaging"] as unknown as ["herald"];
    expect(() => subscribe(["#"], { formats, endpoints: { herald: ["tcp://127.0.0.1:1"] } })).toThrow(
      /"fedora-messaging" is not a format of the broker's PUB sockets: .*consume it from RabbitMQ/,
    );
    // A readonly tuple is accepted (`as const`).
    const both = ["herald", "legacy"] as const;
    expect(() => subscribe(["#"], { formats: both, endpoints: { herald: ["tcp://127.0.0.1:1"] } })).toThrow(
      /no legacy-format PUB socket/,
    );
  });

  it("a source that fails in the constructor closes the subscriptions already opened", () => {
    const ok = new ScriptedSource("ok");
    const bad = new ScriptedSource("bad");
    bad.receive = () => {
      throw new Error("bad endpoint");
    };
    expect(() => new Subscriber({ sources: [ok, bad] })).toThrow("bad endpoint");
    expect(ok.queue.isClosed).toBe(true);
  });
});

describe("client from worker threads and many callers", () => {
  let tb: TestBroker | undefined;
  afterEach(async () => {
    await tb?.stop();
    tb = undefined;
  });

  it("a subscriber to some topics reports no gap for the other topics' numbers; one to # still sees them all", async () => {
    tb = await startTestBroker();
    const watch = (patterns: string[]) => {
      const gaps: Gap[] = [];
      const topics: string[] = [];
      const source = new ZmqSubscribeTransport({ name: "s", endpoints: [tb!.pub.herald], format: "herald" });
      const sub = new Subscriber({
        sources: [source],
        patterns,
        ownsSources: true,
        onGap: (g) => gaps.push(g),
      });
      void (async () => {
        for await (const m of sub) topics.push(m.message.topic);
      })();
      return { sub, gaps, topics };
    };
    const some = watch(["org.a.#"]);
    const all = watch(["#"]);
    const client = tb.client();
    // ZeroMQ's slow joiner: probe until both subscriptions are up (probes match both patterns).
    for (let up = false; !up; ) {
      await client.publish("org.a.probe", {});
      up = await waitFor(
        () => some.topics.includes("org.a.probe") && all.topics.includes("org.a.probe"),
        100,
      );
    }
    for (let i = 0; i < 20; i++) await client.publish(i % 2 === 0 ? "org.a.x" : "org.b.x", { i });
    expect(await waitFor(() => all.topics.filter((t) => t.endsWith(".x")).length === 20)).toBe(true);
    expect(await waitFor(() => some.topics.filter((t) => t === "org.a.x").length === 10)).toBe(true);
    expect(some.topics.filter((t) => t === "org.b.x")).toEqual([]);
    expect(some.gaps).toEqual([]);
    expect(all.gaps).toEqual([]);
    await client.close();
    await Promise.all([some.sub.close(), all.sub.close()]);
  });

  it("publishes from 4 worker threads at once, each with its own client", async () => {
    tb = await startTestBroker();
    const code = `
      import { parentPort, workerData } from "node:worker_threads";
      const { HeraldClient } = await import("file://" + workerData.root + "/dist/client/publisher.js");
      const c = new HeraldClient({ endpoint: workerData.submit });
      const acks = await Promise.all(Array.from({ length: 100 }, (_, i) => c.publish("worker.t" + workerData.n, { i })));
      await c.close();
      parentPort.postMessage(acks.map((a) => a.id));
    `;
    const results = await Promise.all(
      [0, 1, 2, 3].map(
        (n) =>
          new Promise<string[]>((resolve, reject) => {
            const w = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), {
              workerData: { root: ROOT, submit: tb!.submit, n },
            });
            w.once("message", resolve);
            w.once("error", reject);
          }),
      ),
    );
    const ids = results.flat();
    expect(ids).toHaveLength(400);
    expect(new Set(ids).size).toBe(400);
    expect(tb.broker.status().outbox.headSeq).toBe(400);
  });
});
