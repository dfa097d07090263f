/**
 * Subscription prefixes on the legacy ports the shim holds: anyone may subscribe to any number of them, so
 * the evidence keeps the newest 200 per port (and per watch), each cut to 256 characters, and counts the
 * rest ("N more"); a log line and `herald cutover` name a few. Whether a port is in use does not depend on
 * them: a port with a subscriber is still in use however many prefixes it sent.
 */
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { checkRetire, loadEvidence } from "../src/shim/cutover.js";
import { evidencePath } from "../src/shim/evidence.js";
import {
  KeptPrefixes,
  PREFIX_MAX_CHARS,
  PREFIXES_KEPT,
  PREFIXES_SHOWN,
  prefixText,
} from "../src/shim/prefixes.js";
import { History } from "../src/shim/snapshot.js";
import type { Logger } from "../src/util/log.js";
import { waitFor } from "./helpers/broker.js";
import { CLI, freePorts } from "./helpers/serve.js";
import { endpointsOn, type ShimSetup, startShimBroker } from "./shim-helpers.js";

const SERVICE = "bodhi.test";
let setup: ShimSetup | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await setup?.stop();
  setup = undefined;
});

const many = (tag: string, n: number): string[] =>
  Array.from({ length: n }, (_, i) => `org.example.dev.${tag}.${String(i).padStart(4, "0")}`);

function subscriber(endpoint: string, prefixes: string[]): zmq.Subscriber {
  const sub = new zmq.Subscriber({ linger: 0 });
  cleanups.push(() => sub.close());
  sub.subscribe(...prefixes);
  sub.connect(endpoint);
  return sub;
}

describe("KeptPrefixes and prefixText", () => {
  it("keeps the newest 200, each cut, and counts the ones let go; seeing one again makes it newest", () => {
    const k = new KeptPrefixes();
    for (const p of many("a", 1000)) k.add(p);
    expect(k.size).toBe(PREFIXES_KEPT);
    expect(k.more).toBe(800);
    expect(k.sorted()[0]).toBe("org.example.dev.a.0800");
    k.add("org.example.dev.a.0800"); // seen again: newest now, nothing let go
    k.add("org.example.dev.new");
    expect(k.more).toBe(801);
    expect(k.sorted()).toContain("org.example.dev.a.0800");
    expect(k.sorted()).not.toContain("org.example.dev.a.0801");
    k.add("y".repeat(5000));
    expect(k.sorted().find((p) => p.startsWith("y"))).toBe(`${"y".repeat(PREFIX_MAX_CHARS)}…`);
    // From an evidence file written before the cap: capped on reading, the rest counted.
    const old = new KeptPrefixes(many("b", 500), 3);
    expect([old.size, old.more]).toEqual([PREFIXES_KEPT, 303]);
  });

  it("names the first few, shortened, and says how many more", () => {
    const text = prefixText(many("c", 200), 50);
    expect(text.split(", ")).toHaveLength(PREFIXES_SHOWN + 1);
    expect(text).toMatch(/"org\.example\.dev\.c\.0009", and 240 more$/);
    expect(prefixText(["z".repeat(1000)]).length).toBeLessThan(100);
    expect(prefixText([])).toBe("");
  });

  it("a subscriber's live prefixes recorded at every snapshot are counted once, not again each time", () => {
    const h = new History(undefined);
    const state = { endpoint: "tcp://127.0.0.1:1", bound: true, serving: true, connected: 1 };
    for (let i = 0; i < 5; i++) h.recordPorts(SERVICE, [{ ...state, prefixes: many("d", 1000) }], Date.now());
    const mem = h.remembered(SERVICE).get(state.endpoint)!;
    expect([mem.prefixesSeen.size, mem.prefixesSeen.more]).toEqual([PREFIXES_KEPT, 800]);
  });
});

describe("prefixes on a bridged port", () => {
  it("subscribers sending thousands of prefixes: the evidence stays bounded, counts the rest, the port stays in use", async () => {
    const [port] = await freePorts(1);
    const [endpoint] = endpointsOn([port!]) as [string];
    setup = await startShimBroker({ services: { [SERVICE]: { stage: "bridged", endpoints: [endpoint] } } });
    const s = setup;
    const portNow = () => s.running.shim!.status().services[SERVICE]!.ports[endpoint]!;
    expect(await waitFor(() => portNow().serving, 10_000)).toBe(true);

    const first = subscriber(endpoint, many("scan1", 1000));
    expect(await waitFor(() => portNow().prefixesMore === 800, 10_000)).toBe(true);
    for (let i = 0; i < 3; i++) {
      const p = portNow();
      expect([p.prefixes.length, p.prefixesSeen.length, p.prefixesSeenMore]).toEqual([200, 200, 800]);
    }
    first.close();
    // libzmq sends a new connection at most its SNDHWM (1,000) subscriptions: the rest would be lost.
    subscriber(endpoint, [...many("scan2", 999), "y".repeat(5000)]);
    // The first one's leaving is seen (one connected) and the second one's prefixes are all in (1,000 live).
    const settled = () => portNow().connected === 1 && portNow().prefixesMore === 800;
    expect(await waitFor(() => settled() && portNow().prefixesSeenMore === 1800, 10_000)).toBe(true);
    expect(portNow().prefixesSeen).toHaveLength(200);
    expect(portNow().prefixesSeen.every((p) => p.length <= PREFIX_MAX_CHARS + 1)).toBe(true);

    // Still in use, and the reason names a few prefixes, not thousands.
    const v = checkRetire(SERVICE, "bridged", s.running.shim!.status(), 1000);
    expect(v.ok).toBe(false);
    expect(v.reason).toMatch(
      /still has listeners: .*1 subscriber\(s\) connected now \(prefixes .*and 990 more\)/,
    );
    expect(v.reason.length).toBeLessThan(2000);

    expect(
      await waitFor(
        () => loadEvidence(s.config)?.services[SERVICE]?.ports[endpoint]?.prefixesSeenMore === 1800,
      ),
    ).toBe(true);
    expect(statSync(evidencePath(s.config.paths.dataDir)).size).toBeLessThan(40_000);
    const st = spawnSync(process.execPath, [CLI, "cutover", "status"], {
      env: { ...process.env, HERALD_CONFIG: s.file },
      encoding: "utf8",
    });
    const row = st.stdout.split("\n").find((l) => l.includes(endpoint));
    expect(row).toMatch(/and 990 more/);
    expect(row!.length).toBeLessThan(1000);

    // A retire asked for while it is connected is held back; the reason (logged, in the evidence) is short.
    await s.setStages({ [SERVICE]: "retired" });
    const held = s.running.shim!.status().services[SERVICE]!.pending;
    expect(held?.reason).toMatch(/1 subscriber\(s\) connected \(prefixes .*and 990 more\)/);
    expect(held!.reason.length).toBeLessThan(1000);
  });
});

describe("prefixes on a retired service's watched port", () => {
  it("the warning names a few prefixes; the watch keeps the newest 200 and counts the rest", async () => {
    const lines: string[] = [];
    const log: Logger = {
      debug: () => {},
      info: () => {},
      warn: (m) => lines.push(m),
      error: () => {},
      child: () => log,
    };
    const [port] = await freePorts(1);
    const [endpoint] = endpointsOn([port!]) as [string];
    setup = await startShimBroker({
      services: { [SERVICE]: { stage: "bridged", endpoints: [endpoint] } },
      grace: "1s",
      watchRetired: "1h",
      log,
    });
    const s = setup;
    expect(
      await waitFor(() => checkRetire(SERVICE, "bridged", s.running.shim!.status(), 1000).ok, 15_000),
    ).toBe(true);
    await s.setStages({ [SERVICE]: "retired" });
    const watch = () => s.running.shim!.status().services[SERVICE]!.watch;
    subscriber(endpoint, many("straggler", 1000));
    expect(await waitFor(() => watch()?.prefixesMore === 800, 10_000)).toBe(true);
    expect(watch()!.prefixes).toHaveLength(200);
    expect(await waitFor(() => lines.some((l) => l.includes("an old subscriber uses")), 5_000)).toBe(true);
    const warn = lines.find((l) => l.includes("an old subscriber uses"))!;
    expect(warn).toMatch(/and 990 more/);
    expect(warn.length).toBeLessThan(1500);
  });
});
