/**
 * CLI findings of a review: surplus arguments, demo's numbers, a stale pid file, SIGHUP while
 * `herald serve` starts, and `publish -` when the broker stops answering midway.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadConfig } from "../src/config/load.js";
import { signalShim } from "../src/shim/cutover.js";
import type { Message } from "../src/wire/message.js";
import { startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { CLI, freePorts, noBrokerHome, serveEnv } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function home(): { dir: string; env: NodeJS.ProcessEnv } {
  const h = noBrokerHome("herald-clirev-");
  cleanups.push(() => rmSync(h.dir, { recursive: true, force: true }));
  return h;
}

function herald(args: string[], env: NodeJS.ProcessEnv, input?: string) {
  return spawnSync(process.execPath, [CLI, ...args], { env, encoding: "utf8", input, timeout: 60_000 });
}

describe("arguments a command does not take", () => {
  it("are refused (exit 2) instead of ignored", () => {
    const { dir, env } = home();
    const good = join(dir, "good.yaml");
    const bad = join(dir, "bad.yaml");
    writeFileSync(good, "broker:\n  name: ok\n");
    writeFileSync(bad, "broker:\n  name: [not, a, name]\n");
    for (const args of [
      ["config", "show", good],
      ["config", "check", good, bad],
      ["status", "extra"],
      ["keys", "list", "extra"],
      ["cutover", "status", "extra"],
      ["serve", "extra"],
      ["demo", "extra"],
    ]) {
      const r = herald(args, env);
      expect([args.join(" "), r.status, r.stderr]).toEqual([
        args.join(" "),
        2,
        expect.stringMatching(/unexpected argument/),
      ]);
    }
    const unknown = herald(["legacy", "bogus", "x"], env);
    expect([unknown.status, unknown.stderr]).toEqual([
      2,
      expect.stringMatching(/unknown subcommand 'legacy bogus'/),
    ]);
  });

  it("demo takes whole numbers in range for --processes and --messages", () => {
    const { env } = home();
    for (const args of [
      ["--processes", "abc"],
      ["--messages", "1e10"],
      ["--processes", "0"],
    ]) {
      const r = herald(["demo", ...args], env);
      expect([r.status, r.stderr]).toEqual([2, expect.stringMatching(/takes a whole number from 1 to/)]);
    }
  });
});

describe("herald cutover's SIGHUP", () => {
  it("goes only to a live herald, never to whatever pid a stale file names", async () => {
    const { dir, env } = home();
    const config = loadConfig({ env, systemPath: join(dir, "none.yaml") }).config;
    mkdirSync(config.paths.runtimeDir, { recursive: true });
    const sleeper = spawn("sleep", ["30"]);
    cleanups.push(() => {
      sleeper.kill("SIGKILL");
    });
    const file = join(config.paths.runtimeDir, "herald.pid");
    writeFileSync(file, `${sleeper.pid}\n`);
    expect(signalShim(config)).toMatch(/not a running herald/);
    writeFileSync(file, "0\n"); // process.kill(0) would signal our whole process group
    expect(signalShim(config)).toMatch(/not a running herald/);
    await new Promise((r) => setTimeout(r, 200));
    expect(sleeper.exitCode).toBeNull();
    expect(sleeper.signalCode).toBeNull();
  });
});

describe("herald serve and SIGHUP", () => {
  it("survives a SIGHUP that arrives while it starts, and applies the reload once running", async () => {
    const { dir } = home();
    const [hp, lp, port] = await freePorts(3);
    const fedmsg = join(dir, "fedmsg.d");
    mkdirSync(fedmsg);
    // Loading the legacy config takes 2 s: the signal arrives meanwhile.
    writeFileSync(
      join(fedmsg, "base.py"),
      `import time\ntime.sleep(2)\nconfig = dict(endpoints={"app.test": ["tcp://127.0.0.1:${port}"]})\n`,
    );
    const file = join(dir, "herald.yaml");
    writeFileSync(file, stringify({ legacy: { enabled: true, config: fedmsg } }));
    const env = serveEnv(
      dir,
      { herald: hp!, legacy: lp! },
      { HERALD_CONFIG: file, HERALD_LOG_LEVEL: "info" },
    );
    const child: ChildProcess = spawn(process.execPath, [CLI, "serve"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(() => {
      child.kill("SIGKILL");
    });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr += String(d);
    });
    child.stdout!.resume();
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    expect(await waitFor(() => stderr.includes("legacy"), 10_000)).toBe(true);
    child.kill("SIGHUP");
    expect(await waitFor(() => stderr.includes("broker ready"), 20_000), stderr).toBe(true);
    expect(await waitFor(() => stderr.includes("SIGHUP: reloading"), 10_000), stderr).toBe(true);
    expect(child.exitCode).toBeNull();
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  }, 60_000);
});

describe("herald publish - when the broker stops answering midway", () => {
  let tb: TestBroker | undefined;
  afterEach(async () => {
    await tb?.stop();
    tb = undefined;
  });

  it("has printed what was acknowledged, and says from which line nothing is known", async () => {
    tb = await startTestBroker();
    const broker = tb.broker;
    const accept = broker.accept.bind(broker);
    let accepted = 0;
    let release: () => void = () => {};
    const stuck = new Promise<void>((r) => {
      release = r;
    });
    cleanups.push(() => release());
    broker.accept = async (messages: Message[], peer) => {
      if (accepted >= 1000) await stuck; // the broker hangs after the first 1,000
      accepted += messages.length;
      return accept(messages, peer);
    };
    const { env } = home();
    const lines = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ n: i })).join("\n");
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, [CLI, "publish", "org.test.partial", "-", "--endpoint", tb!.submit], {
        env: { ...env, HERALD_CLIENT__TIMEOUT: "1s", HERALD_CLIENT__RETRIES: "0" },
      });
      let stdout = "";
      let stderr = "";
      c.stdout.on("data", (d) => {
        stdout += String(d);
      });
      c.stderr.on("data", (d) => {
        stderr += String(d);
      });
      c.on("close", (status) => resolve({ status, stdout, stderr }));
      c.stdin.end(lines);
    });
    expect(r.status).toBe(4);
    expect(r.stdout.split("\n").filter((l) => l.startsWith("ok "))).toHaveLength(1000);
    expect(r.stderr).toMatch(/1000 message\(s\) were acknowledged before this/);
    expect(r.stderr).toMatch(/from stdin line 1001 on/);
  }, 60_000);
});
