import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { type RunningBroker, startBroker } from "../src/cli/serve.js";
import { HeraldClient } from "../src/client/publisher.js";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/util/log.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";
import { configYaml, endpointsOn } from "./shim-helpers.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** An old fedmsg subscriber on one port: collects the msg_id of every message it gets. */
function oldSubscriber(endpoint: string): { ids: string[] } {
  const sub = new zmq.Subscriber({ linger: 0 });
  sub.subscribe();
  sub.connect(endpoint);
  cleanups.push(() => sub.close());
  const ids: string[] = [];
  void (async () => {
    for await (const [, envelope] of sub) ids.push(String(JSON.parse(String(envelope)).msg_id));
  })().catch(() => {});
  return { ids };
}

describe("the in-broker shim across clean restarts of herald serve", () => {
  it("serves what a bridged service held (port not bound yet) after two restarts, and nothing twice", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-shimrestart-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [herald, legacy, pa, pb] = await freePorts(4);
    const [alpha, beta] = endpointsOn([pa!, pb!]) as [string, string];
    const file = join(dir, "herald.yaml");
    writeFileSync(
      file,
      configYaml(
        dir,
        { herald: herald!, legacy: legacy! },
        {
          services: {
            "alpha.test": { stage: "bridged", endpoints: [alpha] },
            "beta.test": { stage: "bridged", endpoints: [beta] },
          },
        },
      ),
    );
    // beta's old app still runs and holds its port: the shim holds beta's herald traffic meanwhile.
    const oldBeta = new zmq.Publisher({ linger: 0 });
    await oldBeta.bind(beta);
    cleanups.push(() => oldBeta.close());
    let running: RunningBroker | undefined;
    const start = async () => {
      running = await startBroker(loadConfig({ configPath: file, env: {} }).config, silentLogger, undefined, {
        settleMs: 300,
      });
    };
    cleanups.push(() => running?.stop());
    const client = new HeraldClient({
      endpoint: `ipc://${join(dir, "run", "submit.sock")}`,
      timeoutMs: 5000,
    });
    cleanups.push(() => client.close());
    const publish = async (module: string, n: number) =>
      (await client.publish(`org.example.dev.${module}.built`, { n })).id;

    await start();
    const alphaSub = oldSubscriber(alpha);
    // alpha's port is bound and its old subscriber joined once a probe gets through.
    const probes: string[] = [];
    for (let i = 0; i < 100 && alphaSub.ids.length === 0; i++) {
      probes.push(await publish("alpha", -1));
      await waitFor(() => alphaSub.ids.length > 0, 100);
    }
    expect(alphaSub.ids.length).toBeGreaterThan(0);
    const alphaIds = [await publish("alpha", 1), await publish("alpha", 2)];
    const betaIds = [await publish("beta", 1), await publish("beta", 2)];
    expect(await waitFor(() => alphaIds.every((id) => alphaSub.ids.some((g) => g.endsWith(id))))).toBe(true);
    await running!.stop();

    // Restart while beta's port is still taken: beta's messages are held again, alpha's not re-served.
    await start();
    alphaIds.push(await publish("alpha", 3));
    betaIds.push(await publish("beta", 3));
    expect(await waitFor(() => alphaSub.ids.some((g) => g.endsWith(alphaIds[2]!)))).toBe(true);
    await running!.stop();

    // The old beta app is gone; its subscribers reconnect to the port, now the shim's.
    oldBeta.close();
    const betaSub = oldSubscriber(beta);
    await start();
    const served = await waitFor(
      () => betaIds.every((id) => betaSub.ids.some((g) => g.endsWith(id))),
      15_000,
    );
    expect(served, `beta got ${JSON.stringify(betaSub.ids)}`).toBe(true);
    alphaIds.push(await publish("alpha", 4));
    expect(await waitFor(() => alphaSub.ids.some((g) => g.endsWith(alphaIds[3]!)))).toBe(true);
    // Each message exactly once on its own port: nothing that went out before a restart went out again.
    const expected = [...probes.filter((p) => alphaSub.ids.some((g) => g.endsWith(p))), ...alphaIds];
    expect(alphaSub.ids.length).toBe(expected.length);
    expect(new Set(alphaSub.ids).size).toBe(alphaSub.ids.length);
    expect(betaSub.ids.length).toBe(betaIds.length);
  }, 60_000);
});
