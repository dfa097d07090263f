import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { subscribeLegacyAndHerald } from "../src/client/index.js";
import { loadConfigText } from "../src/config/load.js";
import { checkRetire } from "../src/shim/cutover.js";
import { readEvidence } from "../src/shim/evidence.js";
import { pythonJson } from "../src/wire/json.js";
import { legacyMsgId, toLegacyObject } from "../src/wire/legacy.js";
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

interface Env {
  msg_id: string;
  i: number;
  topic: string;
}
const envelopes = (peer: PythonPeer): Env[] => peer.events("message").map((l) => l["envelope"] as Env);

describe("shim bridged stage", () => {
  it("serves a bridged service's herald traffic on its old ports, each message once, fedmsg framing", async () => {
    const ports = await freePorts(3);
    const endpoints = endpointsOn(ports);
    setup = await startShimBroker({ services: { "bodhi.test": { stage: "bridged", endpoints } } });
    const s = setup;
    const herald = collect(s.heraldSub());
    // An old consumer: one SUB connected to every endpoint of the service, as fedmsg.tail_messages does.
    const old = PythonPeer.start("fedmsg_sub.py", [
      ...endpoints.flatMap((e) => ["--connect", e]),
      "--subscribe",
      "org.example.dev.bodhi",
      "--until-topic",
      "org.example.dev.bodhi.marker",
      "--timeout",
      "60",
    ]);
    peers.push(old);
    const served = endpoints[0]!;
    expect(
      await waitFor(() => {
        const p = s.running.shim!.status().services["bodhi.test"]!.ports[served];
        return p !== undefined && p.connected > 0 && p.prefixes.includes("org.example.dev.bodhi");
      }, 15_000),
    ).toBe(true);
    // herald link up too
    for (let i = 0; i < 200 && herald.msgs.length === 0; i++) {
      await s.client.publish("probe.link", { i });
      await waitFor(() => herald.msgs.length > 0, 100);
    }

    const acks = await s.client.publishBatch(
      Array.from({ length: 50 }, (_, n) => ({ topic: "org.example.dev.bodhi.update.request", body: { n } })),
    );
    // Not this service's: another module, and a message that is not under prefix.environment.
    await s.client.publish("org.example.dev.koji.build.tag", { x: 1 });
    await s.client.publish("org.example.dev.bodhi.marker", { end: true });
    await old.waitFor((l) => l.event === "done", "legacy subscriber done", 20_000);

    const want = new Set(acks.map((a) => legacyMsgId({ id: a.id, sentAt: a.acceptedAt } as never)));
    const got = envelopes(old).filter((e) => e.topic === "org.example.dev.bodhi.update.request");
    expect(got).toHaveLength(50);
    expect(new Set(got.map((e) => e.msg_id.slice(5))).size).toBe(50);
    expect(new Set(got.map((e) => e.msg_id.slice(5)))).toEqual(new Set(acks.map((a) => a.id)));
    expect(want.size).toBe(50);
    expect(envelopes(old).some((e) => e.topic.includes("koji"))).toBe(false);

    // Byte-identical to fedmsg's framing of the same message.
    await waitFor(() => acks.every((a) => herald.msgs.some((m) => m.id === a.id)), 10_000);
    for (const l of old.events("message")) {
      const env = l["envelope"] as Env;
      const m = herald.msgs.find((h) => h.id === env.msg_id.slice(5));
      if (!m) continue;
      expect(Buffer.from(l["raw"] as string, "base64").toString("utf8")).toBe(
        pythonJson(toLegacyObject(m, env.i)),
      );
    }
    const st = s.running.shim!.status().services["bodhi.test"]!;
    expect(Object.values(st.ports).filter((p) => p.bound)).toHaveLength(3);
    // Exactly one port serves (the first the shim managed to bind; which one depends on bind order).
    const serving = Object.values(st.ports)
      .filter((p) => p.serving)
      .map((p) => p.endpoint);
    expect(serving).toHaveLength(1);
    expect(endpoints).toContain(serving[0]);

    // The evidence file shows who subscribes to what.
    const evPath = join(s.config.paths.dataDir, "shim-evidence.json");
    expect(
      await waitFor(() => {
        const ev = readEvidence(evPath);
        return (
          ev?.services["bodhi.test"]?.ports[served]?.prefixesSeen.includes("org.example.dev.bodhi") ?? false
        );
      }, 5000),
    ).toBe(true);
  });

  it("loses and duplicates nothing across a legacy -> bridged switch made while traffic flows", async () => {
    const ports = await freePorts(2);
    const endpoints = endpointsOn(ports);
    setup = await startShimBroker({
      services: { "bodhi.test": { stage: "legacy", endpoints } },
      settleMs: 3000,
    });
    const s = setup;
    const herald = collect(s.heraldSub(["org.example.#"]));
    for (let i = 0; i < 200 && herald.msgs.length === 0; i++) {
      await s.client.publish("org.example.dev.probe.link", { i });
      await waitFor(() => herald.msgs.length > 0, 100);
    }
    // The old app, publishing the old way on its ports (slowly, so the switch happens mid-stream).
    const app = legacyPublisher({
      bind: endpoints,
      count: 60,
      topic: "org.example.dev.bodhi.update.comment",
      waitSubscribers: 2,
      extra: ["--interval", "0.02", "--hold"],
    });
    peers.push(app);
    // Its own prefix: an XPUB reports a prefix once, so the old app can wait for both of its listeners.
    const old = PythonPeer.start("fedmsg_sub.py", [
      ...endpoints.flatMap((e) => ["--connect", e]),
      "--subscribe",
      "org.example.dev.bodhi",
      "--until-topic",
      "org.example.dev.bodhi.marker",
      "--timeout",
      "60",
    ]);
    peers.push(old);
    // Wait for the shim's ingest socket and the old consumer on both ports.
    await app.waitUntil(() => (app.events("sent").length >= 10 ? true : undefined), "old app publishing");

    // Switch while the old app is still publishing; the shim keeps ingesting until it can bind its ports.
    await s.setStages({ "bodhi.test": "bridged" });
    // The new herald app publishes meanwhile.
    const herald_acks: string[] = [];
    let stopPublishing = false;
    const publisher = (async () => {
      for (let n = 0; !stopPublishing || n < 30; n++) {
        const ack = await s.client.publish("org.example.dev.bodhi.update.request", { n });
        herald_acks.push(ack.id);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    await app.waitFor((l) => l.event === "done", "old app done");
    app.endInput(); // the old app exits: its ports are free
    expect(
      await waitFor(() => {
        const st = s.running.shim!.status().services["bodhi.test"]!;
        return Object.values(st.ports).every((p) => p.bound);
      }, 20_000),
    ).toBe(true);
    stopPublishing = true;
    await publisher;
    // The old consumer reconnects to the ports the shim now holds (ZeroMQ's slow joiner): wait until the
    // serving port sees its subscription before the end marker, or the marker itself could be the one missed.
    expect(
      await waitFor(() => {
        const st = s.running.shim!.status().services["bodhi.test"]!;
        const p = Object.values(st.ports).find((x) => x.serving);
        return p !== undefined && p.connected > 0 && p.prefixes.includes("org.example.dev.bodhi");
      }, 20_000),
    ).toBe(true);
    await s.client.publish("org.example.dev.bodhi.marker", { end: true });
    await old.waitFor((l) => l.event === "done", "old consumer done", 30_000);

    const legacyIds = app.events("sent").map((l) => l["msg_id"] as string);
    expect(legacyIds).toHaveLength(120);
    // herald subscribers: every legacy and every herald message, once.
    expect(
      await waitFor(() => {
        const ids = new Set(herald.msgs.map((m) => m.id));
        return legacyIds.every((id) => ids.has(id)) && herald_acks.every((id) => ids.has(id));
      }, 15_000),
    ).toBe(true);
    const hIds = herald.msgs.map((m) => m.id);
    expect(new Set(hIds).size).toBe(hIds.length);
    // the old consumer: the old app's messages from the app, the new app's from the shim; each once.
    const seen = envelopes(old).map((e) => e.msg_id);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of legacyIds) expect(seen).toContain(id);
    const seenHerald = new Set(seen.map((id) => id.slice(5)));
    const missing = herald_acks.filter((id) => !seenHerald.has(id));
    expect(missing).toEqual([]);
  });

  it("subscribeLegacyAndHerald reads only legacy services' old ports, each id once, and leaves them when the service is bridged", async () => {
    const endpoints = endpointsOn(await freePorts(2));
    setup = await startShimBroker({
      services: { "bodhi.test": { stage: "legacy", endpoints } },
      grace: "1s",
    });
    const s = setup;
    const dual = await subscribeLegacyAndHerald(["org.example.dev.bodhi.#"], {
      config: s.config,
      configFile: s.file,
      restageIntervalMs: 50,
    });
    const got = collect(dual);
    expect(dual.legacyEndpoints().sort()).toEqual([...endpoints].sort());
    // The herald link is up before the old app sends (a PUB drops what comes before its subscriber).
    for (let i = 0; i < 200 && got.msgs.length === 0; i++) {
      await s.client.publish("org.example.dev.bodhi.probe", { i });
      await waitFor(() => got.msgs.length > 0, 100);
    }
    // The old app on its ports: the consumer reads it there, and through herald (the shim ingests it).
    const app = legacyPublisher({
      bind: endpoints,
      count: 10,
      topic: "org.example.dev.bodhi.update.comment",
      waitSubscribers: 2, // the shim's ingest ("") and the consumer ("org.example.dev.bodhi")
      extra: ["--hold"],
    });
    peers.push(app);
    await app.waitFor((l) => l.event === "done", "old app done");
    const ids = app.events("sent").map((l) => l["msg_id"] as string);
    expect(ids).toHaveLength(20);
    expect(await waitFor(() => ids.every((id) => got.msgs.some((m) => m.id === id)), 10_000)).toBe(true);
    // Both copies arrived and the second was dropped: each id delivered once.
    expect(await waitFor(() => dual.stats().duplicates >= 20, 10_000)).toBe(true);
    expect(got.msgs.filter((m) => ids.includes(m.id))).toHaveLength(20);

    // Bridged: the consumer leaves the old ports (it follows the config file), the old app goes, the shim
    // binds them. Nobody is left there: retire becomes possible instead of being refused forever.
    await s.setStages({ "bodhi.test": "bridged" });
    expect(await waitFor(() => dual.legacyEndpoints().length === 0, 10_000)).toBe(true);
    app.endInput();
    const st = () => s.running.shim!.status().services["bodhi.test"]!;
    expect(await waitFor(() => Object.values(st().ports).every((p) => p.bound), 20_000)).toBe(true);
    expect(
      await waitFor(() => checkRetire("bodhi.test", "bridged", s.running.shim!.status(), 1000).ok, 15_000),
    ).toBe(true);
    // The bridged app's messages still reach the consumer, through herald.
    const ack = await s.client.publish("org.example.dev.bodhi.update.request", { n: 1 });
    expect(await waitFor(() => got.msgs.some((m) => m.id === ack.id), 10_000)).toBe(true);
    await dual.close();
  });

  it("subscribeLegacyAndHerald follows stages given to restage(): joins and leaves old ports", async () => {
    const [h, a, b] = await freePorts(3);
    const [bodhi, koji] = endpointsOn([a!, b!]);
    const config = (stage: string) =>
      loadConfigText(
        `broker: {publish: [{name: herald, endpoint: "tcp://127.0.0.1:${h}", format: herald}]}
legacy:
  services:
    bodhi.test: {stage: ${stage}, endpoints: ["${bodhi}"]}
    koji.test: {stage: legacy, endpoints: ["${koji}"]}
`,
        { env: {} },
      ).config;
    const dual = await subscribeLegacyAndHerald(["#"], { config: config("bridged") });
    expect(dual.legacyEndpoints()).toEqual([koji]);
    await dual.restage(config("legacy"));
    expect(dual.legacyEndpoints().sort()).toEqual([bodhi, koji].sort());
    await dual.restage(config("retired"));
    expect(dual.legacyEndpoints()).toEqual([koji]);
    // Given a config object, not a file: nothing to re-read by itself.
    await expect(dual.restage()).rejects.toThrow(/follows no config file/);
    await dual.close();
  });
});
