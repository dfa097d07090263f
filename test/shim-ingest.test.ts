import { afterEach, describe, expect, it } from "vitest";
import { INGESTED_BY, INGESTED_FROM, VOUCHED } from "../src/shim/ingest.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";
import { PythonPeer } from "./peers/python-peer.js";
import { collect, endpointsOn, legacyPublisher, type ShimSetup, startShimBroker } from "./shim-helpers.js";

let setup: ShimSetup | undefined;
const peers: PythonPeer[] = [];

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.stop()));
  await setup?.stop();
  setup = undefined;
});

function msgIds(peer: PythonPeer): string[] {
  return peer.events("message").map((l) => (l["envelope"] as { msg_id: string }).msg_id);
}

describe("shim ingest (stage legacy)", () => {
  it("passive publishers and an active publisher via relay_inbound reach herald and legacy subscribers once, byte-identical", async () => {
    const [b1, b2, k1, relay] = await freePorts(4);
    setup = await startShimBroker({
      services: {
        "bodhi.test": { stage: "legacy", endpoints: endpointsOn([b1!, b2!]) },
        "koji.test": { stage: "legacy", endpoints: endpointsOn([k1!]) },
      },
      relayInbound: `tcp://127.0.0.1:${relay}`,
    });
    const s = setup;
    const herald = collect(s.heraldSub());
    // A legacy consumer on the broker's fedmsg-format PUB (the public gateway, port 9940 by convention).
    const gateway = PythonPeer.start("fedmsg_sub.py", [
      "--connect",
      `tcp://127.0.0.1:${s.ports.legacy}`,
      "--timeout",
      "60",
    ]);
    peers.push(gateway);
    // Both links up before the publishers start (ZeroMQ's slow joiner).
    for (let i = 0; i < 200; i++) {
      const ack = await s.client.publish("probe.link", { i });
      const ok = await waitFor(
        () => herald.msgs.some((m) => m.id === ack.id) && gateway.events("message").length > 0,
        100,
      );
      if (ok) break;
    }
    expect(gateway.events("message").length).toBeGreaterThan(0);

    const passive = legacyPublisher({
      bind: [`tcp://127.0.0.1:${b1}`, `tcp://127.0.0.1:${b2}`],
      count: 20,
      topic: "org.example.dev.bodhi.update.comment",
    });
    // Numbers JSON.parse cannot give back as written (5.0, past 2^53): still re-emitted byte for byte.
    const numbers = ["--body", '{"duration": 5.0, "big": 12345678901234567890}'];
    const koji = legacyPublisher({
      bind: [`tcp://127.0.0.1:${k1}`],
      count: 20,
      topic: "org.example.dev.koji.build.tag",
      extra: numbers,
    });
    const active = legacyPublisher({
      connect: `tcp://127.0.0.1:${relay}`,
      count: 20,
      topic: "org.example.dev.logger.log",
      extra: numbers,
    });
    peers.push(passive, koji, active);
    for (const p of [passive, koji, active]) await p.waitFor((l) => l.event === "done", "publisher done");
    const sent = [passive, koji, active].flatMap((p) => p.events("sent"));
    expect(sent).toHaveLength(80);
    const rawById = new Map(sent.map((l) => [l["msg_id"] as string, l["raw"] as string]));

    const heraldHas = (): boolean => [...rawById.keys()].every((id) => herald.msgs.some((m) => m.id === id));
    const gatewayHas = (): boolean => {
      const got = new Set(msgIds(gateway));
      return [...rawById.keys()].every((id) => got.has(id));
    };
    expect(await waitFor(() => heraldHas() && gatewayHas(), 20_000)).toBe(true);

    // Exactly once on both sides.
    const heraldIds = herald.msgs.map((m) => m.id).filter((id) => rawById.has(id));
    expect(new Set(heraldIds).size).toBe(heraldIds.length);
    const gwIds = msgIds(gateway).filter((id) => rawById.has(id));
    expect(gwIds).toHaveLength(80);
    expect(new Set(gwIds).size).toBe(80);
    // The broker's legacy PUB re-emits each ingested message byte for byte as the publisher sent it.
    for (const l of gateway.events("message")) {
      const id = (l["envelope"] as { msg_id: string }).msg_id;
      if (rawById.has(id)) expect(l["raw"]).toBe(rawById.get(id));
    }
    // Ingested messages are marked as vouched for by the shim, with where they came from.
    const bodhi = herald.msgs.find((m) => m.topic === "org.example.dev.bodhi.update.comment")!;
    expect(bodhi.headers[VOUCHED]).toBe("legacy");
    expect(bodhi.headers[INGESTED_BY]).toBe("shimtest");
    expect(bodhi.headers[INGESTED_FROM]).toBe("bodhi.test");
    expect(bodhi.origin).toMatchObject({ host: "test", app: "bodhi" });
    const logged = herald.msgs.find((m) => m.topic === "org.example.dev.logger.log")!;
    expect(logged.headers[INGESTED_FROM]).toBe("relay_inbound");
    // The app is the word after <topicPrefix>.<environment>. (org.example.dev here), not the environment.
    expect(logged.origin).toMatchObject({ host: "relay", app: "logger" });

    const st = s.running.shim!.status();
    expect(st.services["bodhi.test"]!.ingest).toMatchObject({ ingested: 40, duplicates: 0, malformed: 0 });
    expect(st.services["koji.test"]!.ingest.ingested).toBe(20);
    expect(st.services["bodhi.test"]!.ingest.lastSeenAt).toBeDefined();
    expect(st.relayInbound).toMatchObject({ bound: true, ingested: 20 });
  });
});
