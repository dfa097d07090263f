import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, noBrokerHome } from "./helpers/serve.js";

// Usage errors are found before any broker is contacted: no broker runs here.
describe("tail and publish usage errors (exit 2)", () => {
  const { dir, env } = noBrokerHome("herald-cli-usage-");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  // A tail that wrongly starts waits for messages forever: the timeout turns that into a failure.
  const herald = (args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: "utf8", timeout: 10_000 });
    return { code: r.status, stderr: r.stderr };
  };

  it("publish refuses a second JSON body instead of dropping it", () => {
    const r = herald(["publish", "t.x", '{"a":1}', '{"b":2}']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^herald: one JSON body per command, got 2: publish several with `-`/);
  });

  it("tail refuses --endpoint with --format both: an endpoint is one format's socket", () => {
    const r = herald(["tail", "--format", "both", "--endpoint", "tcp://127.0.0.1:1", "--count", "1"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^herald: --endpoint with --format both: .*run one tail per format/);
  });

  it("tail refuses --endpoint or --format with --source (they would be ignored)", () => {
    for (const extra of [
      ["--endpoint", "tcp://127.0.0.1:1"],
      ["--format", "legacy"],
    ]) {
      const r = herald(["tail", "--source", "anything", ...extra, "--count", "1"]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^herald: --source reads a configured AMQP source/);
    }
  });
});
