/**
 * The watch after retirement (legacy.watchRetired): a retired service's old ports stay bound, serving
 * nothing, so an old subscriber that was away during the evidence window is seen, logged and shown; the
 * ports close when the watch ends, a restart binds them again during the watch only, and a restore serves
 * on the same sockets again.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { type RunningBroker, startBroker } from "../src/cli/serve.js";
import { loadConfig, loadConfigText } from "../src/config/load.js";
import type { LegacyStage } from "../src/config/schema.js";
import { ConfigError } from "../src/errors.js";
import { checkRetire, loadEvidence, restore, watchLines } from "../src/shim/cutover.js";
import type { ServiceEvidence } from "../src/shim/evidence.js";
import { waitFor } from "./helpers/broker.js";
import { type LogLine, memoryLogger } from "./helpers/log.js";
import { CLI, canBind, freePorts } from "./helpers/serve.js";
import { PythonPeer } from "./peers/python-peer.js";
import { configYaml, endpointsOn, type ShimSetup, startShimBroker } from "./shim-helpers.js";

const SERVICE = "wiki.test";
const PREFIX = "org.example.dev.wiki";

const cleanups: Array<() => Promise<void> | void> = [];
let setup: ShimSetup | undefined;

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await setup?.stop();
  setup = undefined;
});

/** Poll an async condition (libzmq unbinds in its I/O thread, a moment after a close). */
async function eventually(cond: () => Promise<boolean>, timeoutMs = 2_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

async function retiredSite(watchRetired: string | undefined, lines: LogLine[] = []) {
  const endpoints = endpointsOn(await freePorts(2));
  setup = await startShimBroker({
    services: { [SERVICE]: { stage: "bridged", endpoints } },
    grace: "1s",
    ...(watchRetired !== undefined ? { watchRetired } : {}),
    log: memoryLogger(lines),
  });
  const s = setup;
  const live = (): ServiceEvidence => s.running.shim!.status().services[SERVICE]!;
  // As `herald cutover retire` would: once the ports were watched quietly for the grace period.
  expect(
    await waitFor(() => checkRetire(SERVICE, "bridged", s.running.shim!.status(), 1000).ok, 15_000),
  ).toBe(true);
  await s.setStages({ [SERVICE]: "retired" });
  expect(live().stage).toBe("retired");
  return { s, endpoints, live };
}

describe("the watch after retirement", () => {
  it("keeps the ports bound, serving nothing; a Python straggler is counted, logged and shown; restore serves it again", async () => {
    const lines: LogLine[] = [];
    const { s, endpoints, live } = await retiredSite(undefined, lines); // the default, 7d
    const ports = Object.values(live().ports);
    expect(ports.map((p) => [p.bound, p.serving])).toEqual([
      [true, false],
      [true, false],
    ]);
    expect(live().watch).toMatchObject({ stragglers: 0, prefixes: [] });
    const until = Date.parse(live().watch!.until) - Date.parse(live().stageSince);
    expect(until).toBe(7 * 86_400_000);

    // A consumer that was away all along comes back with its old fedmsg config.
    const sub = PythonPeer.start("fedmsg_sub.py", [
      ...endpoints.flatMap((e) => ["--connect", e]),
      "--subscribe",
      PREFIX,
      "--until-topic",
      `${PREFIX}.marker`,
      "--timeout",
      "60",
    ]);
    cleanups.push(() => sub.stop());
    const evidence = () => loadEvidence(s.config)?.services[SERVICE];
    expect(
      await waitFor(() => {
        const w = evidence()?.watch;
        return w !== undefined && w.stragglers >= 2 && w.prefixes.includes(PREFIX);
      }, 15_000),
    ).toBe(true);
    expect(evidence()!.watch!.lastSeenAt).toBeDefined();
    // A warning per port, naming service, port, prefix and the fix; at most one a minute per port.
    expect(await waitFor(() => lines.filter((l) => l.level === "warn").length >= 2, 5_000)).toBe(true);
    const warns = lines.filter((l) => l.level === "warn");
    for (const ep of endpoints) {
      const mine = warns.filter((l) => l.msg.includes(`port ${ep} `));
      expect(mine).toHaveLength(1);
      expect(mine[0]!.msg).toContain(`retired service ${SERVICE}'s`);
      expect(mine[0]!.msg).toContain(`"${PREFIX}"`);
      expect(mine[0]!.msg).toContain(
        "it gets nothing: move it to herald (docs/migration.md) or run `herald cutover restore wiki.test`",
      );
    }
    // Another straggler on the first port within the minute: counted, but no second line for the port.
    const before = evidence()!.watch!.stragglers;
    const late = new zmq.Subscriber({ linger: 0 });
    cleanups.push(() => late.close());
    late.subscribe(`${PREFIX}.late`);
    late.connect(endpoints[0]!);
    expect(await waitFor(() => (evidence()?.watch?.stragglers ?? 0) > before, 10_000)).toBe(true);
    expect(await waitFor(() => evidence()?.watch?.prefixes.includes(`${PREFIX}.late`) ?? false, 5_000)).toBe(
      true,
    );
    late.close();
    await new Promise((r) => setTimeout(r, 500));
    expect(lines.filter((l) => l.level === "warn")).toHaveLength(2);
    // Served nothing meanwhile (the broker hands it to the shim within the pause; nobody serves it).
    await s.client.publish(`${PREFIX}.during`, { n: 1 });
    await new Promise((r) => setTimeout(r, 1000));
    expect(sub.events("message")).toEqual([]);

    // `herald cutover status` and `plan` (dist/, as an admin runs them) say so, with the restore hint.
    const env = { ...process.env, HERALD_CONFIG: s.file };
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [CLI, "cutover", ...args], { env, encoding: "utf8" });
    const status = cli("status");
    expect(status.status).toBe(0);
    expect(status.stdout).toMatch(/wiki\.test\s+retired/);
    expect(status.stdout).toMatch(
      /watch: its old ports are watched until \S+Z \(legacy\.watchRetired\): [2-9]\d* old subscriber connection\(s\) since the retirement, \d connected now \(prefixes "org\.example\.dev\.wiki", "org\.example\.dev\.wiki\.late"\); they get nothing: move them to herald \(docs\/migration\.md\) or run `herald cutover restore wiki\.test`/,
    );
    for (const ep of endpoints) expect(status.stdout).toMatch(new RegExp(`watching\\s+${ep}\\s+\\d\\s+now`));
    const plan = cli("plan");
    expect(plan.status).toBe(0);
    expect(plan.stdout).toMatch(/wiki\.test\s+retired\s+-> done\s+retired\n/);
    expect(plan.stdout).toMatch(
      /\n\s+watch: its old ports are watched until .*herald cutover restore wiki\.test/,
    );
    const json = JSON.parse(cli("status", "--json").stdout) as {
      evidence: { services: Record<string, ServiceEvidence> };
    };
    expect(json.evidence.services[SERVICE]!.watch!.prefixes).toEqual([PREFIX, `${PREFIX}.late`]);

    // Restore during the watch: the same sockets serve again, and the subscriber that stayed connected
    // receives what is published after it (never what was published while retired).
    const reload = () => s.running.shim!.reload(loadConfig({ configPath: s.file, env: {} }).config);
    const back = await restore({
      config: s.config,
      file: s.file,
      service: SERVICE,
      stage: "retired",
      notify: async () => {
        await reload();
        return "reloaded";
      },
      warn: () => {},
    });
    expect(back.confirmed).toMatch(/bound 2 port\(s\)/);
    expect(live().stage).toBe("bridged");
    expect(live().watch).toBeUndefined();
    await s.client.publish(`${PREFIX}.marker`, { end: true });
    await sub.waitFor((l) => l.event === "done", "the straggler got the marker after the restore", 15_000);
    expect(sub.events("message").map((l) => l["topic"])).toEqual([`${PREFIX}.marker`]);
    // It never had to reconnect: one connection per port, from before the restore.
    expect(sub.events("connected")).toHaveLength(2);
  });

  it("closes the ports when the watch ends (a fresh bind succeeds) and keeps the record", async () => {
    const lines: LogLine[] = [];
    const { endpoints, live } = await retiredSite("2s", lines);
    expect(Object.values(live().ports).every((p) => p.bound && !p.serving)).toBe(true);
    for (const ep of endpoints) expect(await canBind(ep)).toBe(false);
    // Ends at stageSince + 2 s; the shim checks every second.
    const end = Date.parse(live().watch!.until);
    expect(await waitFor(() => Object.values(live().ports).every((p) => !p.bound), 6_000)).toBe(true);
    expect(Date.now()).toBeGreaterThanOrEqual(end);
    expect(Date.now() - end).toBeLessThan(2_500);
    for (const ep of endpoints) expect(await eventually(() => canBind(ep))).toBe(true);
    expect(lines.some((l) => l.msg.includes("the watch after retirement is over"))).toBe(true);
    expect(watchLines(SERVICE, live())).toEqual([
      expect.stringMatching(/were watched until \S+Z and are closed: no old subscriber came/),
    ]);
  });

  it("watchRetired 0: the ports close at retirement, as without the watch", async () => {
    const { endpoints, live } = await retiredSite("0");
    expect(Object.values(live().ports).some((p) => p.bound)).toBe(false);
    expect(live().watch).toBeUndefined();
    for (const ep of endpoints) expect(await eventually(() => canBind(ep))).toBe(true);
  });

  it("a retire -> legacy closes the watched ports at once", async () => {
    const { s, endpoints, live } = await retiredSite(undefined);
    expect(Object.values(live().ports).every((p) => p.bound)).toBe(true);
    await s.setStages({ [SERVICE]: "legacy" });
    expect(Object.values(live().ports).some((p) => p.bound)).toBe(false);
    for (const ep of endpoints) expect(await eventually(() => canBind(ep))).toBe(true);
  });
});

describe("the watch after retirement across shim restarts", () => {
  it("a restart during the watch binds the ports again (one held by someone else: logged once, left alone); after the watch it does not", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-watch-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [herald, legacy, a, b] = await freePorts(4);
    const [alpha, beta] = endpointsOn([a!, b!]) as [string, string];
    const file = join(dir, "herald.yaml");
    const write = (stage: LegacyStage) =>
      writeFileSync(
        file,
        configYaml(
          dir,
          { herald: herald!, legacy: legacy! },
          { services: { [SERVICE]: { stage, endpoints: [alpha, beta] } }, watchRetired: "6s" },
        ),
      );
    const load = () => loadConfig({ configPath: file, env: {} }).config;
    let running: RunningBroker | undefined;
    cleanups.push(() => running?.stop());
    const lines: LogLine[] = [];
    const start = async () => {
      running = await startBroker(load(), memoryLogger(lines), undefined, { settleMs: 300 });
    };
    const live = () => running!.shim!.status().services[SERVICE]!;
    const port = (ep: string) => live().ports[ep]!;

    write("bridged");
    await start();
    expect(
      await waitFor(() => checkRetire(SERVICE, "bridged", running!.shim!.status(), 1000).ok, 15_000),
    ).toBe(true);
    write("retired");
    await running!.shim!.reload(load());
    const until = live().watch!.until;
    // A straggler during the first run: counted, and the count outlives the restart.
    const sub = new zmq.Subscriber({ linger: 0 });
    cleanups.push(() => sub.close());
    sub.subscribe(PREFIX);
    sub.connect(alpha);
    expect(await waitFor(() => (live().watch?.stragglers ?? 0) >= 1, 10_000)).toBe(true);
    // The connection is counted when it comes; its subscription frame may come later (a loaded machine).
    expect(await waitFor(() => live().watch?.prefixes.includes(PREFIX) ?? false, 10_000)).toBe(true);
    await running!.stop();
    running = undefined;

    // Someone else holds beta meanwhile: the restarted shim watches alpha and leaves beta alone.
    const other = new zmq.Publisher({ linger: 0 });
    cleanups.push(() => other.close());
    await other.bind(beta);
    await start();
    expect(live().stage).toBe("retired");
    expect(live().watch!.until).toBe(until);
    expect(port(alpha)).toMatchObject({ bound: true, serving: false });
    expect(port(beta).bound).toBe(false);
    expect(port(beta).lastError).toBeDefined();
    expect(await waitFor(() => (live().watch?.stragglers ?? 0) >= 2, 10_000)).toBe(true);
    expect(Date.now()).toBeLessThan(Date.parse(until)); // (the restart took less than the watch)
    // Not retried: one line, and beta stays unbound while the watch lasts.
    await new Promise((r) => setTimeout(r, 1500));
    expect(lines.filter((l) => l.msg.includes("cannot watch a retired service's old port"))).toHaveLength(1);
    expect(lines.find((l) => l.msg.includes("cannot watch"))?.level).toBe("info");
    expect(port(beta).bound).toBe(false);
    other.close();

    // The watch ends during this run: alpha closes.
    expect(await waitFor(() => !port(alpha).bound, 10_000)).toBe(true);
    expect(await eventually(() => canBind(alpha))).toBe(true);
    await running!.stop();
    running = undefined;

    // After the watch, a restart binds nothing; what was seen is still in the evidence.
    await start();
    expect(live().stage).toBe("retired");
    expect(Object.values(live().ports).some((p) => p.bound)).toBe(false);
    expect(live().watch).toMatchObject({ until, prefixes: [PREFIX] });
    expect(live().watch!.stragglers).toBeGreaterThanOrEqual(2);
    expect(await canBind(alpha)).toBe(true);
    expect(await canBind(beta)).toBe(true);
  });
});

describe("legacy.watchRetired in the configuration", () => {
  const load = (text: string, env: NodeJS.ProcessEnv = {}) =>
    loadConfigText(text, { file: "/etc/herald/herald.yaml", env }).config;

  it("defaults to 7d, takes durations and 0, and the env override", () => {
    expect(load("{}").legacy.watchRetired).toBe(7 * 86_400_000);
    expect(load("legacy: {watchRetired: 0}").legacy.watchRetired).toBe(0);
    expect(load("legacy: {watchRetired: 90d}").legacy.watchRetired).toBe(90 * 86_400_000);
    expect(load("legacy: {watchRetired: 1500}").legacy.watchRetired).toBe(1500);
    expect(load("{}", { HERALD_LEGACY__WATCH_RETIRED: "2h" }).legacy.watchRetired).toBe(7_200_000);
  });

  it.each([["-1s"], ["-5"], ["soon"], ["true"], ["[1d]"]])(
    "refuses %s with a CONFIG error naming the key",
    (v) => {
      let err: unknown;
      try {
        load(`legacy: {watchRetired: ${v}}`);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).code).toBe("CONFIG");
      expect((err as ConfigError).message).toContain("legacy.watchRetired");
    },
  );

  it("refuses a bad env override the same way", () => {
    expect(() => load("{}", { HERALD_LEGACY__WATCH_RETIRED: "weekly" })).toThrow(
      /HERALD_LEGACY__WATCH_RETIRED.*legacy\.watchRetired|legacy\.watchRetired.*HERALD_LEGACY__WATCH_RETIRED/s,
    );
  });
});
