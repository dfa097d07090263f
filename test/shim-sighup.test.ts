import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { loadEvidence } from "../src/shim/cutover.js";
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
});

function cli(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("herald serve with the shim", () => {
  it("switches a stage on SIGHUP (pid file) and `herald cutover` refuses/edits with exit codes", async () => {
    dir = mkdtempSync(join(tmpdir(), "herald-shim-hup-"));
    const [herald, legacy, a, b] = await freePorts(4);
    const endpoints = endpointsOn([a!, b!]);
    const file = join(dir, "herald.yaml");
    const services = { "bodhi.test": { stage: "legacy" as const, endpoints } };
    writeFileSync(file, configYaml(dir, { herald: herald!, legacy: legacy! }, { services, grace: "1s" }));
    const env = { ...process.env, HERALD_CONFIG: file, HERALD_PATHS__RUNTIME_DIR: join(dir, "run") };
    serve = await startServe(env);
    const config = loadConfig({ configPath: file, env: {} }).config;
    const pid = Number(readFileSync(join(config.paths.runtimeDir, "herald.pid"), "utf8"));
    expect(pid).toBe(serve.child.pid);
    const stage = () => loadEvidence(config)?.services["bodhi.test"]?.stage;
    expect(await waitFor(() => stage() === "legacy", 10_000)).toBe(true);

    // Retiring a service that is still in stage legacy and watched for less than the grace: exit 1.
    const refused = await cli(["cutover", "retire", "bodhi.test", "--grace", "1h"], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/CUTOVER_REFUSED: cannot retire bodhi\.test/);

    // Edit the file by hand (the mtime poll would also see it) and send SIGHUP: the stage switches.
    writeFileSync(
      file,
      configYaml(
        dir,
        { herald: herald!, legacy: legacy! },
        { services: { "bodhi.test": { stage: "bridged", endpoints } }, grace: "1s" },
      ),
    );
    serve.child.kill("SIGHUP");
    expect(await waitFor(() => stage() === "bridged", 10_000)).toBe(true);
    expect(
      await waitFor(
        () => Object.values(loadEvidence(config)!.services["bodhi.test"]!.ports).every((p) => p.bound),
        10_000,
      ),
    ).toBe(true);

    // After the grace with nobody listening, `herald cutover retire` edits the file and signals the serve process.
    let out = { code: -1, stdout: "", stderr: "" };
    for (let i = 0; i < 50 && out.code !== 0; i++) {
      out = await cli(["cutover", "retire", "bodhi.test"], env);
      if (out.code !== 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(out.stdout).toMatch(/retired .*sent SIGHUP to pid/);
    expect(await waitFor(() => stage() === "retired", 10_000)).toBe(true);
    const status = await cli(["cutover", "status"], env);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/bodhi\.test\s+retired/);
    expect(serve.stderr()).not.toMatch(/ERROR/);
  });
});
