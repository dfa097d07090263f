import { spawnSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CLI } from "./helpers/serve.js";

describe("the herald executable", () => {
  it("is executable and starts through its shebang, whose node flags node accepts", () => {
    expect(() => accessSync(CLI, constants.X_OK)).not.toThrow();
    const shebang = readFileSync(CLI, "utf8").split("\n", 1)[0];
    expect(shebang).toMatch(
      /^#!\/usr\/bin\/env -S node --max-semi-space-size=\d+ --heap-growing-percent=\d+$/,
    );
    const r = spawnSync(CLI, ["--help"], { encoding: "utf8", timeout: 30_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: herald COMMAND/);
  });
});
