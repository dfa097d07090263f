/**
 * Retire between the decision and the shim: the shim keeps a port open while a subscriber is connected,
 * and `retire` waits for the shim to confirm, putting the stage back in the file when it did not apply.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import type { HeraldError } from "../src/errors.js";
import { checkRetire, cutoverLogPath, loadEvidence, retire } from "../src/shim/cutover.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";
import { PythonPeer } from "./peers/python-peer.js";
import { endpointsOn, type ShimSetup, startShimBroker } from "./shim-helpers.js";

let setup: ShimSetup | undefined;
const peers: PythonPeer[] = [];

afterEach(async () => {
  await Promise.all(peers.splice(0).map((p) => p.stop()));
  await setup?.stop();
  setup = undefined;
});

const SERVICE = "wiki.test";

async function bridged(): Promise<{ s: ShimSetup; endpoints: string[] }> {
  const endpoints = endpointsOn(await freePorts(2));
  setup = await startShimBroker({ services: { [SERVICE]: { stage: "bridged", endpoints } }, grace: "1s" });
  return { s: setup, endpoints };
}

/** An old fedmsg consumer on every port of the service, until a marker message. */
function oldSubscriber(endpoints: string[]): PythonPeer {
  const p = PythonPeer.start("fedmsg_sub.py", [
    ...endpoints.flatMap((e) => ["--connect", e]),
    "--subscribe",
    "org.example.dev.wiki",
    "--until-topic",
    "org.example.dev.wiki.marker",
    "--timeout",
    "60",
  ]);
  peers.push(p);
  return p;
}

const stageInFile = (file: string): string | undefined =>
  /wiki\.test:\n\s+stage: (\w+)/.exec(readFileSync(file, "utf8"))?.[1];

const logResults = (s: ShimSetup): string[] =>
  readFileSync(cutoverLogPath(s.config), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { action: string; result: string })
    .map((l) => `${l.action}:${l.result}`);

describe("retire against the live shim", () => {
  it("the shim keeps a port open when told to retire while a subscriber is connected; retires at a later reload once it left", async () => {
    const { s, endpoints } = await bridged();
    const live = () => s.running.shim!.status().services[SERVICE]!;
    const sub = oldSubscriber(endpoints);
    expect(
      await waitFor(
        () => Object.values(live().ports).every((p) => p.prefixes.includes("org.example.dev.wiki")),
        15_000,
      ),
    ).toBe(true);

    await s.setStages({ [SERVICE]: "retired" });
    const held = live();
    expect(held.stage).toBe("bridged");
    expect(held.pending?.stage).toBe("retired");
    expect(held.pending?.reason).toMatch(
      /1 subscriber\(s\) connected \(prefixes "org\.example\.dev\.wiki"\)/,
    );
    expect(Object.values(held.ports).every((p) => p.bound)).toBe(true);
    // What `herald cutover` reads says so too.
    expect(loadEvidence(s.config)?.services[SERVICE]?.pending?.stage).toBe("retired");
    // The subscriber is still served.
    await s.client.publish("org.example.dev.wiki.marker", { end: true });
    await sub.waitFor((l) => l.event === "done", "the old subscriber got the marker");
    expect(sub.events("message")).toHaveLength(1);

    expect(await waitFor(() => Object.values(live().ports).every((p) => p.connected === 0), 10_000)).toBe(
      true,
    );
    await s.running.shim!.reload(loadConfig({ configPath: s.file, env: {} }).config);
    const after = live();
    expect(after.stage).toBe("retired");
    expect(after.pending).toBeUndefined();
    // legacy.watchRetired (default 7d): the ports stay bound for the watch after retirement, serving nothing.
    expect(Object.values(after.ports).some((p) => p.serving)).toBe(false);
    expect(after.watch).toMatchObject({ stragglers: 0 });
  });

  it("retire puts the stage back when a subscriber connects between its decision and the shim's reload", async () => {
    const { s, endpoints } = await bridged();
    const live = () => s.running.shim!.status().services[SERVICE]!;
    expect(
      await waitFor(() => checkRetire(SERVICE, "bridged", loadEvidence(s.config), 1000).ok, 15_000),
    ).toBe(true);
    let sub: PythonPeer | undefined;
    // The decision is made; then, before the shim reloads, an old subscriber connects.
    const notify = async (): Promise<string> => {
      if (!sub) {
        sub = oldSubscriber(endpoints);
        await waitFor(() => Object.values(live().ports).some((p) => p.connected > 0), 15_000);
      }
      await s.running.shim!.reload(loadConfig({ configPath: s.file, env: {} }).config);
      return "reloaded";
    };
    const err = (await retire({
      config: s.config,
      file: s.file,
      service: SERVICE,
      stage: "bridged",
      notify,
      warn: () => {},
    }).catch((e: unknown) => e)) as HeraldError;
    expect(err.code).toBe("CUTOVER_REFUSED");
    expect(err.message).toMatch(/retire of wiki\.test was not applied: .*held it back: .*connected/);
    expect(err.message).toContain("The file says bridged again");
    expect(stageInFile(s.file)).toBe("bridged");
    expect(logResults(s)).toEqual(["retire:intent", "retire:rolled-back"]);
    // Never cut off: the shim still serves it, and the put-back reload cleared the held retire.
    expect(live()).toMatchObject({ stage: "bridged" });
    expect(live().pending).toBeUndefined();
    await s.client.publish("org.example.dev.wiki.marker", { end: true });
    await sub!.waitFor((l) => l.event === "done", "the old subscriber got the marker");
  });

  it("retire puts the stage back when the running shim does not reload the file it edited", async () => {
    const { s } = await bridged();
    expect(
      await waitFor(() => checkRetire(SERVICE, "bridged", loadEvidence(s.config), 1000).ok, 15_000),
    ).toBe(true);
    const err = (await retire({
      config: s.config,
      file: s.file,
      service: SERVICE,
      stage: "bridged",
      notify: () => "told nobody",
      confirmMs: 1500,
      warn: () => {},
    }).catch((e: unknown) => e)) as HeraldError;
    expect(err.code).toBe("CUTOVER_REFUSED");
    expect(err.message).toMatch(
      /still has wiki\.test at bridged 1500ms after .* was changed: it did not reload that file \(it runs without a config file to reload\)/,
    );
    expect(stageInFile(s.file)).toBe("bridged");
    expect(logResults(s)).toEqual(["retire:intent", "retire:rolled-back"]);
  });
});
