import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EXIT } from "../src/cli/args.js";
import { reportError } from "../src/cli/run.js";
import { loadConfig, loadConfigText } from "../src/config/load.js";
import { HeraldError } from "../src/errors.js";
import {
  checkRetire,
  cutoverLogPath,
  loadEvidence,
  planCutover,
  restore,
  retire,
  setStageInFile,
} from "../src/shim/cutover.js";
import type { EvidenceFile, PortEvidence, ServiceEvidence } from "../src/shim/evidence.js";
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

describe("herald cutover", () => {
  it("retire refuses while a legacy subscriber listens, succeeds after it left and the grace passed; restore brings the ports back", async () => {
    const endpoints = endpointsOn(await freePorts(2));
    setup = await startShimBroker({
      services: { "wiki.test": { stage: "bridged", endpoints } },
      grace: "1s",
      // No watch after retirement: the ports close at once (test/shim-watch-retired.test.ts has the watch).
      watchRetired: "0",
    });
    const s = setup;
    writeFileSync(
      s.file,
      `# site settings: this comment must survive cutover edits\n${readFileSync(s.file, "utf8")}`,
    );
    const reload = () => s.running.shim!.reload(loadConfig({ configPath: s.file, env: {} }).config);
    // The in-process shim has no pid file: the reload SIGHUP would trigger is made here.
    const notify = async () => {
      await reload();
      return "reloaded";
    };
    const base = { config: s.config, file: s.file, service: "wiki.test", notify, warn: () => {} };
    const ports = () => loadEvidence(s.config)?.services["wiki.test"]?.ports ?? {};

    const sub = PythonPeer.start("fedmsg_sub.py", [
      ...endpoints.flatMap((e) => ["--connect", e]),
      "--subscribe",
      "org.example.dev.wiki",
      "--timeout",
      "60",
    ]);
    peers.push(sub);
    // The evidence file (what `herald cutover` reads) shows the subscriber and its prefix on both ports.
    expect(
      await waitFor(
        () =>
          Object.values(ports()).filter((p) => p.connected > 0 && p.prefixes.includes("org.example.dev.wiki"))
            .length === 2,
        15_000,
      ),
    ).toBe(true);

    let refused: unknown;
    try {
      await retire({ ...base, stage: "bridged" });
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(HeraldError);
    expect((refused as HeraldError).code).toBe("CUTOVER_REFUSED");
    expect((refused as HeraldError).message).toMatch(/connected now.*org\.example\.dev\.wiki/);
    const plan = planCutover(s.config, new Map([["wiki.test", "bridged"]]), loadEvidence(s.config));
    expect(plan[0]).toMatchObject({ next: "wait" });
    expect(plan[0]!.listeners).toHaveLength(2);

    await sub.stop();
    expect(await waitFor(() => Object.values(ports()).every((p) => p.connected === 0), 10_000)).toBe(true);
    // Gone, but seen within a longer grace: still refused, naming when.
    await expect(retire({ ...base, stage: "bridged", graceMs: 600_000 })).rejects.toThrow(/seen .* ago/);
    // Once the 1 s grace has passed, the subscriber seen since the bridge still blocks a plain retire:
    // it may be a job that comes back. Accepting it is explicit.
    const accept = { acceptPastSubscribers: true };
    expect(
      await waitFor(
        () => checkRetire("wiki.test", "bridged", loadEvidence(s.config), 1000, Date.now(), accept).ok,
        10_000,
      ),
    ).toBe(true);
    await expect(retire({ ...base, stage: "bridged" })).rejects.toThrow(
      /seen .* since it became bridged.*--accept-past-subscribers/,
    );
    // Dry run: allowed, nothing changed.
    const dry = await retire({ ...base, ...accept, stage: "bridged", dryRun: true });
    expect(dry).toMatchObject({ done: false, dryRun: true });
    expect(readFileSync(s.file, "utf8")).not.toMatch(/stage: retired/);

    // The retire waits until the running shim's evidence shows the ports closed.
    const done = await retire({ ...base, ...accept, stage: "bridged" });
    expect(done.done).toBe(true);
    expect(done.confirmed).toMatch(/closed its ports/);
    const text = readFileSync(s.file, "utf8");
    expect(text).toMatch(/# site settings: this comment must survive cutover edits/);
    expect(loadConfig({ configPath: s.file, env: {} }).config.legacy.services["wiki.test"]!.stage).toBe(
      "retired",
    );
    expect(Object.values(ports()).every((p) => !p.bound)).toBe(true);
    expect(loadEvidence(s.config)!.services["wiki.test"]!.stage).toBe("retired");

    // Restore: ports come back (confirmed) and an old subscriber receives again.
    const back = await restore({ ...base, stage: "retired" });
    expect(back.confirmed).toMatch(/bound 2 port\(s\)/);
    expect(loadConfig({ configPath: s.file, env: {} }).config.legacy.services["wiki.test"]!.stage).toBe(
      "bridged",
    );
    const again = PythonPeer.start("fedmsg_sub.py", [
      ...endpoints.flatMap((e) => ["--connect", e]),
      "--subscribe",
      "org.example.dev.wiki",
      "--count",
      "1",
      "--timeout",
      "30",
    ]);
    peers.push(again);
    expect(
      await waitFor(
        () => Object.values(ports()).some((p) => p.bound && p.serving && p.connected > 0),
        15_000,
      ),
    ).toBe(true);
    const ack = await s.client.publish("org.example.dev.wiki.article.edit", { page: "Main" });
    const got = await again.waitFor((l) => l.event === "message", "message after restore");
    expect((got["envelope"] as { msg_id: string }).msg_id.endsWith(ack.id)).toBe(true);

    const log = readFileSync(cutoverLogPath(s.config), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { action: string; result: string; evidence?: unknown });
    expect(log.map((l) => `${l.action}:${l.result}`)).toEqual([
      "retire:refused",
      "retire:refused",
      "retire:refused",
      "retire:dry-run",
      "retire:intent",
      "retire:done",
      "restore:intent",
      "restore:done",
    ]);
    expect(log[0]!.evidence).toBeDefined();
  });
});

describe("checkRetire on evidence that proves too little", () => {
  const now = Date.parse("2026-12-02T12:00:00Z");
  const hourAgo = new Date(now - 3_600_000).toISOString();
  const port = (endpoint: string, extra: Partial<PortEvidence> = {}): PortEvidence => ({
    endpoint,
    bound: true,
    boundSince: hourAgo,
    serving: true,
    connected: 0,
    prefixes: [],
    prefixesSeen: [],
    ...extra,
  });
  const evidence = (svc: Partial<ServiceEvidence>): EvidenceFile => ({
    version: 1,
    broker: "b",
    pid: process.pid,
    updatedAt: new Date(now).toISOString(),
    services: {
      s: {
        stage: "bridged",
        stageSince: hourAgo,
        endpoints: ["tcp://127.0.0.1:3000"],
        ingest: { ingested: 0, duplicates: 0, malformed: 0, rejected: 0, dropped: 0 },
        ports: {},
        ...svc,
      },
    },
  });
  const grace = 60_000;

  it("allows a bridged service whose every port here was watched, unused, for the grace period", () => {
    const ev = evidence({ ports: { "tcp://127.0.0.1:3000": port("tcp://127.0.0.1:3000") } });
    expect(checkRetire("s", "bridged", ev, grace, now)).toMatchObject({ ok: true });
  });

  it("refuses a bridged service with no port on this host: nothing was watched", () => {
    const ev = evidence({ endpoints: ["tcp://remote.example.org:3000"] });
    const v = checkRetire("s", "bridged", ev, grace, now);
    expect(v.ok).toBe(false);
    expect(v.reason).toContain("is on this host");
  });

  it("refuses a legacy service: its old app holds the ports, so no one there can be watched", () => {
    const ev = evidence({ stage: "legacy", stageSince: new Date(now - 86_400_000).toISOString() });
    const v = checkRetire("s", "legacy", ev, grace, now);
    expect(v.ok).toBe(false);
    expect(v.reason).toContain("set it to bridged first");
  });

  it("counts the quiet watched time summed over shim restarts, not the time since this run's bind", () => {
    const ep = "tcp://127.0.0.1:3000";
    // Bound 10 s ago by a restarted shim, but watched quietly for 70 s in all: enough for a 60 s grace.
    const restarted = port(ep, { boundSince: new Date(now - 10_000).toISOString(), quietWatchedMs: 70_000 });
    expect(checkRetire("s", "bridged", evidence({ ports: { [ep]: restarted } }), grace, now)).toMatchObject({
      ok: true,
    });
    // 50 s in all (the time the shim was down is not in it): not yet, and the refusal says how long.
    const short = { ...restarted, quietWatchedMs: 50_000 };
    const v = checkRetire("s", "bridged", evidence({ ports: { [ep]: short } }), grace, now);
    expect(v.ok).toBe(false);
    expect(v.reason).toMatch(/watched with nobody connected for 50s .*time the shim was down is not counted/);
  });

  it("refuses a subscriber seen since the service was bridged, before the grace period, unless accepted", () => {
    const ep = "tcp://127.0.0.1:3000";
    const svc = {
      stageSince: new Date(now - 86_400_000).toISOString(),
      ports: {
        [ep]: port(ep, {
          lastSeenAt: new Date(now - 7_200_000).toISOString(),
          prefixesSeen: ["org.example.dev.wiki.report"],
        }),
      },
    };
    const v = checkRetire("s", "bridged", evidence(svc), grace, now);
    expect(v.ok).toBe(false);
    expect(v.reason).toMatch(/seen 2h ago, since bridged at .*"org\.example\.dev\.wiki\.report"/);
    expect(v.reason).toContain("--accept-past-subscribers");
    const accepted = checkRetire("s", "bridged", evidence(svc), grace, now, { acceptPastSubscribers: true });
    expect(accepted.ok).toBe(true);
    expect(accepted.accepted).toHaveLength(1);
    // plan lists them, whether or not retire would be allowed
    const { config } = loadConfigText("legacy: {grace: 1m}\n", { env: {} });
    const plan = planCutover(config, new Map([["s", "bridged"]]), evidence(svc), now);
    expect(plan[0]!.pastListeners).toEqual([expect.stringContaining("seen 2h ago")]);
    // Seen before the service was bridged (an earlier period): not this stage's business.
    const earlier = { ...svc, stageSince: new Date(now - 3_600_000).toISOString() };
    expect(checkRetire("s", "bridged", evidence(earlier), grace, now).ok).toBe(true);
  });

  it("does not call a service retired while the running shim holds its ports open", () => {
    const ev = evidence({
      pending: {
        stage: "retired",
        since: hourAgo,
        reason: "tcp://127.0.0.1:3000: 1 subscriber(s) connected",
      },
    });
    const v = checkRetire("s", "retired", ev, grace, now);
    expect(v.ok).toBe(false);
    expect(v.reason).toMatch(/still has it at bridged \(tcp:\/\/127\.0\.0\.1:3000: 1 subscriber/);
  });

  it("names the shim's last evidence write error when the evidence is stale", () => {
    const stale = { ...evidence({}), updatedAt: new Date(now - 600_000).toISOString() };
    const writeError = {
      at: new Date(now - 590_000).toISOString(),
      message: "ENOSPC: no space left on device",
    };
    const v = checkRetire("s", "bridged", stale, grace, now, { writeError });
    expect(v.ok).toBe(false);
    expect(v.reason).toMatch(/10m old \(its last write failed at .*: ENOSPC: no space left on device\)/);
  });

  it("does not wait for a port whose endpoint left the configuration, but counts who was seen there", () => {
    const gone = "tcp://127.0.0.1:3001";
    const ports = {
      "tcp://127.0.0.1:3000": port("tcp://127.0.0.1:3000"),
      [gone]: port(gone, { bound: false, serving: false, boundSince: undefined }),
    };
    expect(checkRetire("s", "bridged", evidence({ ports }), grace, now)).toMatchObject({ ok: true });
    const seen = { ...ports, [gone]: { ...ports[gone]!, lastSeenAt: new Date(now - 1000).toISOString() } };
    expect(checkRetire("s", "bridged", evidence({ ports: seen }), grace, now).ok).toBe(false);
  });
});

describe("setStageInFile", () => {
  it("edits a symlinked config file's target, keeping the link and the target's mode", () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-stage-"));
    try {
      mkdirSync(join(dir, "etc"));
      const target = join(dir, "etc", "herald.yaml");
      writeFileSync(target, "# managed\nlegacy:\n  services:\n    s: {stage: bridged}\n", { mode: 0o640 });
      chmodSync(target, 0o640);
      const link = join(dir, "herald.yaml");
      symlinkSync(target, link);
      setStageInFile(link, "s", "retired");
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(statSync(target).mode & 0o777).toBe(0o640);
      const text = readFileSync(target, "utf8");
      expect(text).toContain("# managed");
      expect(text).toMatch(/stage: retired/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("two cutovers at once", () => {
    let dir: string;
    afterEach(() => rmSync(dir, { recursive: true, force: true }));
    const setup = (services: string[], stage: string) => {
      dir = mkdtempSync(join(tmpdir(), "herald-lock-"));
      const file = join(dir, "herald.yaml");
      const lines = services.map((s) => `    ${s}: {stage: ${stage}}`);
      writeFileSync(file, `legacy:\n  services:\n${lines.join("\n")}\n`);
      return file;
    };
    const stageOf = (file: string, s: string) =>
      new RegExp(`${s}: \\{ ?stage: (\\w+) ?\\}`).exec(readFileSync(file, "utf8"))?.[1];

    it("edits from racing processes all land (without the lock one overwrote another)", async () => {
      const services = Array.from({ length: 40 }, (_, i) => `s${i}`);
      const file = setup(services, "retired");
      const mod = join(process.cwd(), "dist", "shim", "cutover.js");
      const worker = (mine: string[]) =>
        `const { setStageInFile } = await import(${JSON.stringify(mod)}); for (const s of ${JSON.stringify(mine)}) setStageInFile(${JSON.stringify(file)}, s, "bridged", "retired");`;
      const runs = [0, 1, 2, 3].map(
        (k) =>
          new Promise<number | null>((resolve) => {
            const mine = services.filter((_, i) => i % 4 === k);
            const child = spawn(process.execPath, ["--input-type=module", "-e", worker(mine)], {
              stdio: "inherit",
            });
            child.on("exit", resolve);
          }),
      );
      expect(await Promise.all(runs)).toEqual([0, 0, 0, 0]);
      expect(services.filter((s) => stageOf(file, s) !== "bridged")).toEqual([]);
      expect(existsSync(`${file}.lock`)).toBe(false);
    });

    it("waits for a live holder and then says who holds the lock; takes over a dead holder's lock", () => {
      const file = setup(["s"], "bridged");
      writeFileSync(`${file}.lock`, String(process.pid));
      const err = (() => {
        try {
          setStageInFile(file, "s", "retired", "bridged", 200);
        } catch (e) {
          return e as HeraldError;
        }
        return undefined;
      })();
      // Contention, not a configuration mistake: retryable, and the CLI exits 1 rather than 3.
      expect(err?.code).toBe("CUTOVER_REFUSED");
      expect(err?.retryable).toBe(true);
      expect(reportError(err)).toBe(EXIT.failed);
      expect(err?.message).toContain(
        `is being edited by another process (lock ${file}.lock, pid ${process.pid})`,
      );
      expect(stageOf(file, "s")).toBe("bridged");
      const gone = spawnSync(process.execPath, ["-e", "0"]).pid;
      writeFileSync(`${file}.lock`, String(gone));
      setStageInFile(file, "s", "retired", "bridged", 200);
      expect(stageOf(file, "s")).toBe("retired");
      expect(existsSync(`${file}.lock`)).toBe(false);
    });

    it("refuses when the stage in the file changed since the command read it", () => {
      const file = setup(["s"], "legacy");
      let err: HeraldError | undefined;
      try {
        setStageInFile(file, "s", "retired", "bridged");
      } catch (e) {
        err = e as HeraldError;
      }
      expect(err?.code).toBe("CUTOVER_REFUSED");
      expect(err?.message).toContain("another cutover ran meanwhile");
      expect(stageOf(file, "s")).toBe("legacy");
    });
  });
});
