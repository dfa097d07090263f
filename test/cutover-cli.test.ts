/** `herald cutover` as an admin runs it (dist/, a real `herald serve`): refusals, overrides, the log. */
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import type { LegacyStage } from "../src/config/schema.js";
import { cutoverLogPath, loadEvidence } from "../src/shim/cutover.js";
import { evidencePath } from "../src/shim/evidence.js";
import { waitFor } from "./helpers/broker.js";
import { CLI, freePorts, type ServeProcess, startServe } from "./helpers/serve.js";
import { configYaml, endpointsOn } from "./shim-helpers.js";

let serve: ServeProcess | undefined;
let dir: string | undefined;

afterEach(async () => {
  serve?.child.kill("SIGTERM");
  await serve?.exited;
  serve = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

async function site(services: Record<string, LegacyStage>, grace: string) {
  dir = mkdtempSync(join(tmpdir(), "herald-cutover-cli-"));
  const [herald, legacy, ...ports] = await freePorts(2 + 2 * Object.keys(services).length);
  const file = join(dir, "herald.yaml");
  const svcs = Object.fromEntries(
    Object.entries(services).map(([name, stage], i) => [
      name,
      { stage, endpoints: endpointsOn([ports[2 * i]!, ports[2 * i + 1]!]) },
    ]),
  );
  writeFileSync(file, configYaml(dir, { herald: herald!, legacy: legacy! }, { services: svcs, grace }));
  const env = { ...process.env, HERALD_CONFIG: file, HERALD_PATHS__RUNTIME_DIR: join(dir, "run") };
  const config = loadConfig({ configPath: file, env: {} }).config;
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, "cutover", ...args], { env, encoding: "utf8" });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const stage = (name: string) =>
    new RegExp(`${name.replace(".", "\\.")}:\\n\\s+stage: (\\w+)`).exec(readFileSync(file, "utf8"))?.[1];
  const log = () =>
    readFileSync(cutoverLogPath(config), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { dir, file, env, config, cli, stage, log };
}

describe("herald cutover against a running herald serve", () => {
  it("refuses a config file the shim does not reload, a short --grace without --force; confirms retire and restore", async () => {
    const s = await site({ "wiki.test": "bridged" }, "1h");
    serve = await startServe(s.env);
    const ev = () => loadEvidence(s.config);
    expect(
      await waitFor(() => {
        const ports = Object.values(ev()?.services["wiki.test"]?.ports ?? {});
        return ports.length === 2 && ports.every((p) => p.bound);
      }, 15_000),
    ).toBe(true);
    expect(ev()!.configFile).toBe(realpathSync(s.file));

    // Another copy of the config: the shim would never see the edit.
    const other = join(s.dir, "other.yaml");
    copyFileSync(s.file, other);
    const wrong = s.cli("retire", "wiki.test", "--grace", "2h", "--config", other);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(
      `the running shim (pid ${serve.child.pid}) reloads ${realpathSync(s.file)}, not ${other}`,
    );
    expect(readFileSync(other, "utf8")).toBe(readFileSync(s.file, "utf8"));

    // Shorter than legacy.grace: refused unless forced; forced, said and logged.
    const short = s.cli("retire", "wiki.test", "--grace", "0s");
    expect(short.code).toBe(1);
    expect(short.stderr).toMatch(/--grace 0ms is shorter than legacy\.grace \(1h\).*pass --force/);
    expect(s.stage("wiki.test")).toBe("bridged");
    const forced = s.cli("retire", "wiki.test", "--grace", "0s", "--force");
    expect(forced.stderr).toMatch(
      /warning: --grace 0ms is shorter than legacy\.grace \(1h\): overridden with --force/,
    );
    expect(forced.code).toBe(0);
    // legacy.watchRetired (default 7d): the ports stay bound, serving nothing, for stragglers.
    expect(forced.stdout).toMatch(
      /wiki\.test: retired .*sent SIGHUP to pid \d+; the running shim \(pid \d+\) stopped serving its ports and watches them for old subscribers until \S+Z \(legacy\.watchRetired\)/,
    );
    expect(s.stage("wiki.test")).toBe("retired");
    const done = s.log().filter((l) => l["result"] === "intent" || l["result"] === "done");
    expect(done.map((l) => l["result"])).toEqual(["intent", "done"]);
    expect(done[1]).toMatchObject({ graceMs: 0, graceOverride: { configuredMs: 3_600_000 } });

    // Restore: confirmed once the ports serve again (the watched ones, taken over); a second restore is refused.
    const back = s.cli("restore", "wiki.test");
    expect(back.code).toBe(0);
    expect(back.stdout).toMatch(/restored to bridged .*bound 2 port\(s\)/);
    const again = s.cli("restore", "wiki.test");
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/CUTOVER_REFUSED: cannot restore wiki\.test: it is bridged already/);
  });
});

describe("herald cutover without a shim", () => {
  it("restore refuses a service that is not retired, saying how to bridge one", async () => {
    const s = await site({ "koji.test": "legacy" }, "1s");
    const r = s.cli("restore", "koji.test");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/CUTOVER_REFUSED: cannot restore koji\.test: it is legacy, not retired/);
    expect(r.stderr).toContain("set legacy.services.koji.test.stage: bridged in");
    expect(s.stage("koji.test")).toBe("legacy");
    expect(s.log().map((l) => l["result"])).toEqual(["refused"]);
  });

  it("logs the intent before editing: an unwritable cutover.log stops a change, and only warns on a dry run", async () => {
    const s = await site({ "wiki.test": "retired" }, "1s");
    mkdirSync(cutoverLogPath(s.config), { recursive: true }); // cannot be appended to
    const dry = s.cli("restore", "wiki.test", "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/dry run: wiki\.test could be restored/);
    expect(dry.stderr).toMatch(/warning: could not append to .*cutover\.log .*this entry is not logged/);
    const real = s.cli("restore", "wiki.test");
    expect(real.code).toBe(1);
    expect(real.stderr).toMatch(/cannot append to .*cutover\.log .*nothing was changed/);
    expect(s.stage("wiki.test")).toBe("retired");
  });

  it("status shows what the broker refused of a service's ingest (a shim whose every message is refused is not idle)", async () => {
    const s = await site({ "koji.test": "legacy" }, "1h");
    const now = new Date().toISOString();
    const ingest = { ingested: 0, duplicates: 0, malformed: 0, rejected: 3, dropped: 0, lastSeenAt: now };
    const evidence = {
      version: 1,
      broker: "b",
      pid: process.pid,
      updatedAt: now,
      services: { "koji.test": { stage: "legacy", stageSince: now, endpoints: [], ingest, ports: {} } },
    };
    mkdirSync(s.config.paths.dataDir, { recursive: true });
    writeFileSync(evidencePath(s.config.paths.dataDir), JSON.stringify(evidence));
    const st = s.cli("status");
    expect(st.stdout).toMatch(/koji\.test .*ingested 0, dup 0, malformed 0, REFUSED 3 \(by the broker/);
  });
});
