import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { startBroker } from "../src/cli/serve.js";
import { HeraldClient } from "../src/client/publisher.js";
import { loadConfigText } from "../src/config/load.js";
import { generateIdentity, trustKey } from "../src/security/index.js";
import { startShim } from "../src/shim/shim.js";
import { silentLogger } from "../src/util/log.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";
import { legacyPublisher } from "./shim-helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("herald shim in its own process, against a broker with CURVE on its TCP sockets", () => {
  it("ingests over a CURVE submit socket and serves bridged ports from the CURVE herald PUB", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-shimcurve-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [submit, herald, legacy, oldApp, bridged] = await freePorts(5);
    const keysDir = join(dir, "keys");
    const trustDir = join(dir, "trust");
    // One host, one identity: the broker's CURVE server key, and the shim's client and subscriber keys.
    const hub = generateIdentity("hub", keysDir);
    trustKey(hub, trustDir);
    const doc = {
      paths: { runtimeDir: join(dir, "run"), dataDir: join(dir, "data") },
      broker: {
        name: "hub",
        submit: { ipc: false, tcp: [`tcp://127.0.0.1:${submit}`] },
        publish: [
          { name: "herald", endpoint: `tcp://127.0.0.1:${herald}`, format: "herald" },
          { name: "legacy", endpoint: `tcp://127.0.0.1:${legacy}`, format: "legacy" },
        ],
      },
      security: { keysDir, trustDir, identity: "hub", curve: true },
      legacy: {
        enabled: true,
        shimInBroker: false,
        topicPrefix: "org.example",
        environment: "dev",
        grace: "1s",
        services: {
          "bodhi.test": { stage: "legacy", endpoints: [`tcp://127.0.0.1:${oldApp}`] },
          "koji.test": { stage: "bridged", endpoints: [`tcp://127.0.0.1:${bridged}`] },
        },
      },
    };
    const { config } = loadConfigText(JSON.stringify(doc), { file: join(dir, "herald.yaml"), env: {} });
    const running = await startBroker(config, silentLogger);
    cleanups.push(() => running.stop());
    expect(running.shim).toBeUndefined();
    const shim = await startShim(config, silentLogger, { feed: "subscribe", settleMs: 500 });
    cleanups.push(() => shim.stop());

    // Bridged: a herald message for koji reaches an old subscriber of koji's port through the CURVE PUB.
    const oldSub = new zmq.Subscriber({ linger: 0 });
    oldSub.subscribe();
    oldSub.connect(`tcp://127.0.0.1:${bridged}`);
    cleanups.push(() => oldSub.close());
    const served: string[] = [];
    void (async () => {
      for await (const [topic] of oldSub) served.push(String(topic));
    })().catch(() => {});
    const client = new HeraldClient({
      endpoint: `tcp://127.0.0.1:${submit}`,
      curve: { identity: hub, serverKey: hub.curvePublic },
      timeoutMs: 2000,
    });
    cleanups.push(() => client.close());
    for (let i = 0; i < 100 && served.length === 0; i++) {
      await client.publish("org.example.dev.koji.build.tag", { i });
      await waitFor(() => served.length > 0, 200);
    }
    expect(served[0]).toBe("org.example.dev.koji.build.tag");

    // Legacy: what the old app publishes is ingested through the shim's CURVE client.
    const app = legacyPublisher({
      bind: [`tcp://127.0.0.1:${oldApp}`],
      count: 20,
      topic: "org.example.dev.bodhi.update.comment",
    });
    cleanups.push(() => app.stop());
    const ingest = () => shim.status().services["bodhi.test"]?.ingest;
    expect(await waitFor(() => (ingest()?.ingested ?? 0) >= 20, 30_000)).toBe(true);
    expect(ingest()).toMatchObject({ ingested: 20, rejected: 0, dropped: 0 });
  });
});
