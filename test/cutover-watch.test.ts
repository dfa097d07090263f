/**
 * How long a port was watched: summed over shim restarts, never counting the time the shim was down; and
 * an evidence file the shim cannot write is said, not hidden.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import type { PortState } from "../src/shim/bridged.js";
import { checkRetire, loadEvidence, loadEvidenceError } from "../src/shim/cutover.js";
import {
  type EvidenceFile,
  EvidenceWriter,
  evidenceErrorPath,
  type ServiceEvidence,
} from "../src/shim/evidence.js";
import { History } from "../src/shim/snapshot.js";
import { waitFor } from "./helpers/broker.js";
import { CLI, freePorts, type ServeProcess, startServe } from "./helpers/serve.js";
import { configYaml, endpointsOn } from "./shim-helpers.js";

const EP = "tcp://127.0.0.1:3000";
const t0 = Date.parse("2026-12-02T12:00:00Z");

function previous(quietWatchedMs: number): EvidenceFile {
  const svc: ServiceEvidence = {
    stage: "bridged",
    stageSince: new Date(t0 - 86_400_000).toISOString(),
    endpoints: [EP],
    ingest: { ingested: 0, duplicates: 0, malformed: 0, rejected: 0, dropped: 0 },
    ports: {
      [EP]: {
        endpoint: EP,
        bound: false,
        serving: false,
        connected: 0,
        prefixes: [],
        prefixesSeen: [],
        quietWatchedMs,
      },
    },
  };
  return {
    version: 1,
    broker: "b",
    pid: 1,
    updatedAt: new Date(t0 - 60_000).toISOString(),
    services: { s: svc },
  };
}

const bound = (extra: Partial<PortState> = {}): PortState => ({
  endpoint: EP,
  bound: true,
  boundSince: t0,
  serving: true,
  connected: 0,
  prefixes: [],
  ...extra,
});

describe("quiet watched time (History)", () => {
  it("adds this run's bound time to the previous runs', without the time in between", () => {
    const h = new History(previous(5000));
    const quiet = () => h.remembered("s").get(EP)!.quietMs;
    // The previous run ended a minute before t0 (its evidence): that minute is not watched time.
    h.recordPorts("s", [bound()], t0 + 1000);
    expect(quiet()).toBe(6000);
    h.recordPorts("s", [bound()], t0 + 3000);
    expect(quiet()).toBe(8000);
    // Someone came and went between two snapshots: quiet since then only.
    h.recordPorts("s", [bound({ lastSeenAt: t0 + 3500 })], t0 + 4000);
    expect(quiet()).toBe(500);
    h.recordPorts("s", [bound({ connected: 1, lastSeenAt: t0 + 3500 })], t0 + 5000);
    expect(quiet()).toBe(0);
    h.recordPorts("s", [bound({ lastSeenAt: t0 + 5500 })], t0 + 6000);
    expect(quiet()).toBe(500);
    // Not bound (the old app holds the port again): nobody is watched; a later bind counts from itself.
    h.recordPorts("s", [bound({ bound: false, boundSince: undefined })], t0 + 7000);
    expect(quiet()).toBe(500);
    h.recordPorts("s", [bound({ boundSince: t0 + 9000, lastSeenAt: t0 + 5500 })], t0 + 10_000);
    expect(quiet()).toBe(1500);
    // A new stage starts a new watch.
    h.stageChanged("s", "legacy");
    expect(quiet()).toBe(0);
  });
});

describe("EvidenceWriter", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("logs a failed write once per failure, notes it for `herald cutover`, and clears it once written", () => {
    dir = mkdtempSync(join(tmpdir(), "herald-evidence-"));
    const path = join(dir, "shim-evidence.json");
    mkdirSync(path); // a directory where the file should be: every write fails
    const logs: string[] = [];
    const log = {
      debug: () => {},
      info: (m: string) => logs.push(`info ${m}`),
      warn: (m: string) => logs.push(`warn ${m}`),
      error: (m: string, f?: Record<string, unknown>) => logs.push(`error ${m} ${String(f?.["err"])}`),
      child: () => log,
    };
    const snap = (): EvidenceFile => ({ ...previous(0), updatedAt: new Date().toISOString() });
    const w = new EvidenceWriter(path, snap, 5000, log);
    w.flush();
    w.flush();
    expect(logs).toEqual([expect.stringMatching(/^error cannot write the shim evidence.*EISDIR/)]);
    const config = loadConfig({ configPath: writeConfig(dir), env: {} }).config;
    const noted = loadEvidenceError(config, undefined);
    expect(noted?.message).toMatch(/EISDIR/);
    // What retire says when there is no evidence: the reason it is missing.
    expect(checkRetire("s", "bridged", undefined, 1000, Date.now(), { writeError: noted }).reason).toMatch(
      /no shim evidence yet \(its last write failed at .*EISDIR/,
    );
    rmSync(path, { recursive: true });
    w.flush();
    expect(logs[1]).toBe("info shim evidence written again");
    expect(existsSync(evidenceErrorPath(path))).toBe(false);
    expect(loadEvidence(config)?.version).toBe(1);
  });
});

function writeConfig(dir: string): string {
  const file = join(dir, "herald.yaml");
  writeFileSync(file, `paths: {dataDir: ${dir}, runtimeDir: ${join(dir, "run")}}\n`);
  return file;
}

describe("watched time across a restart of `herald serve`", () => {
  let serve: ServeProcess | undefined;
  let dir: string | undefined;
  afterEach(async () => {
    serve?.child.kill("SIGTERM");
    await serve?.exited;
    serve = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("keeps the quiet time a restart would have reset, without the time the shim was down", async () => {
    dir = mkdtempSync(join(tmpdir(), "herald-watch-"));
    const [herald, legacy, a, b] = await freePorts(4);
    const file = join(dir, "herald.yaml");
    const services = { "wiki.test": { stage: "bridged" as const, endpoints: endpointsOn([a!, b!]) } };
    writeFileSync(file, configYaml(dir, { herald: herald!, legacy: legacy! }, { services, grace: "2s" }));
    const env = { ...process.env, HERALD_CONFIG: file, HERALD_PATHS__RUNTIME_DIR: join(dir, "run") };
    const config = loadConfig({ configPath: file, env: {} }).config;
    const retireDry = () =>
      spawnSync(process.execPath, [CLI, "cutover", "retire", "wiki.test", "--dry-run"], {
        env,
        encoding: "utf8",
      });
    const quiet = () =>
      Object.values(loadEvidence(config)?.services["wiki.test"]?.ports ?? {}).map(
        (p) => p.quietWatchedMs ?? 0,
      );

    serve = await startServe(env);
    expect(
      await waitFor(() => checkRetire("wiki.test", "bridged", loadEvidence(config), 2000).ok, 15_000),
    ).toBe(true);
    serve.child.kill("SIGTERM");
    await serve.exited;
    // Stopping writes the evidence one last time: the quiet time up to then.
    const atStop = quiet();
    expect(atStop.every((q) => q >= 2000)).toBe(true);
    const stoppedAt = Date.now();

    serve = await startServe(env);
    expect(
      await waitFor(() => {
        const ev = loadEvidence(config);
        const ports = Object.values(ev?.services["wiki.test"]?.ports ?? {});
        return ev?.pid === serve!.child.pid && ports.length === 2 && ports.every((p) => p.bound);
      }, 15_000),
    ).toBe(true);
    // Right after the restart: allowed on the time watched before it (a fresh run alone has not 2 s).
    const r = retireDry();
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/dry run: wiki\.test could be retired/);
    // And the time it was down is not in the count: what was kept plus this run's bound time, no more.
    const ev = loadEvidence(config)!;
    for (const [i, p] of Object.values(ev.services["wiki.test"]!.ports).entries()) {
      const thisRun = Date.parse(ev.updatedAt) - Date.parse(p.boundSince!);
      expect(Date.parse(p.boundSince!)).toBeGreaterThan(stoppedAt);
      expect(p.quietWatchedMs).toBeGreaterThanOrEqual(atStop[i]!);
      expect(p.quietWatchedMs).toBeLessThanOrEqual(atStop[i]! + thisRun);
    }
    expect(readFileSync(join(dir, "data", "shim-evidence.json"), "utf8")).toContain("quietWatchedMs");
  });
});
