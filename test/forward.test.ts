import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HeraldClient } from "../src/client/publisher.js";
import { Subscriber } from "../src/client/subscriber.js";
import { ForwardTransport } from "../src/transport/forward.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { collectIds, linkUp, startTestBroker, waitFor } from "./helpers/broker.js";
import { freePorts, type ServeProcess, serveEnv, startServe } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function herald(port: number): Subscriber {
  return new Subscriber({
    sources: [
      new ZmqSubscribeTransport({ name: "h", endpoints: [`tcp://127.0.0.1:${port}`], format: "herald" }),
    ],
  });
}

describe("forwarding between brokers", () => {
  it("A -> B: kill -9 of B mid-burst loses nothing end to end", { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-fwd-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [hp, lp, sp] = await freePorts(3);
    const bSubmit = `tcp://127.0.0.1:${sp}`;
    const env = serveEnv(
      dir,
      { herald: hp!, legacy: lp! },
      { HERALD_BROKER__SUBMIT__TCP: `[${bSubmit}]`, HERALD_BROKER__NAME: "b" },
    );
    let b: ServeProcess = await startServe(env);
    cleanups.push(() => void b.child.kill("SIGKILL"));
    const atB = herald(hp!);
    const got = collectIds(atB);
    cleanups.push(() => atB.close());
    const bClient = new HeraldClient({ endpoint: b.submit });
    await linkUp(bClient, [got.ids]);
    await bClient.close();

    const a = await startTestBroker({
      name: "a",
      extraSinks: [
        new ForwardTransport({ name: "to-b", endpoint: bSubmit, brokerName: "a", timeoutMs: 1000 }),
      ],
    });
    cleanups.push(() => a.stop());
    const client = a.client();
    const acked: string[] = [];
    const burst = (async () => {
      for (let i = 0; i < 40; i++) {
        const acks = await client.publishBatch(
          Array.from({ length: 100 }, (_, k) => ({ topic: "fwd.test", body: { i, k } })),
        );
        acked.push(...acks.map((x) => x.id));
      }
    })();
    expect(await waitFor(() => got.ids.length > 800, 60_000)).toBe(true);
    b.child.kill("SIGKILL");
    await b.exited;
    const forwardedAtKill = got.ids.length;
    // Stay down long enough for the subscriber's reconnect backoff to reach its maximum: B must hold its
    // PUB socket back (broker.publishDelay) until the subscriber is back, or what A forwards is lost.
    await new Promise((r) => setTimeout(r, 3000));
    b = await startServe(env);
    await burst;
    const ok = await waitFor(() => {
      const s = new Set(got.ids);
      return acked.every((id) => s.has(id));
    }, 90_000);
    const s = new Set(got.ids);
    const lost = acked.filter((id) => !s.has(id));
    const fwd = a.broker.status().sinks.find((x) => x.name === "to-b")!;
    console.log(
      `forward test: acked at A ${acked.length}, at B before the kill ${forwardedAtKill}, distinct at B ${s.size}, lost ${lost.length}, sink retries ${fwd.retries}, dups ${fwd.health.counters["duplicates"] ?? 0}`,
    );
    expect(lost).toEqual([]);
    expect(ok).toBe(true);
    // The kill really happened mid-stream: B had not yet published everything A acknowledged.
    expect(forwardedAtKill).toBeLessThan(acked.length);
  });

  it("A -> B -> A: the loop is stopped and every message is published once per socket", async () => {
    const [sa, sb] = await freePorts(2);
    const a = await startTestBroker({
      name: "a",
      submitEndpoints: [`tcp://127.0.0.1:${sa}`],
      extraSinks: [
        new ForwardTransport({ name: "to-b", endpoint: `tcp://127.0.0.1:${sb}`, brokerName: "a" }),
      ],
    });
    cleanups.push(() => a.stop());
    const b = await startTestBroker({
      name: "b",
      submitEndpoints: [`tcp://127.0.0.1:${sb}`],
      extraSinks: [
        new ForwardTransport({ name: "to-a", endpoint: `tcp://127.0.0.1:${sa}`, brokerName: "b" }),
      ],
    });
    cleanups.push(() => b.stop());
    const atA = collectIds(a.subscriber(["herald"]));
    const atB = collectIds(b.subscriber(["herald"]));
    const client = new HeraldClient({ endpoint: `tcp://127.0.0.1:${sa}` });
    cleanups.push(() => client.close());
    await linkUp(client, [atA.ids, atB.ids]);
    const acks = await client.publishBatch(
      Array.from({ length: 200 }, (_, i) => ({ topic: "loop.test", body: { i } })),
    );
    const ids = acks.map((x) => x.id);
    expect(await waitFor(() => ids.every((id) => atA.ids.includes(id) && atB.ids.includes(id)))).toBe(true);
    // Let the messages come back around from B to A.
    expect(await waitFor(() => a.broker.status().submit.loopsStopped >= 200)).toBe(true);
    for (const id of ids) {
      expect(atA.ids.filter((x) => x === id)).toHaveLength(1);
      expect(atB.ids.filter((x) => x === id)).toHaveLength(1);
    }
  });
});
