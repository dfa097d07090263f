/** `herald config check` (the built CLI) finds its file as every other command does, and says which. */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SYSTEM_CONFIG_PATH } from "../src/config/index.js";

const CLI = path.resolve(import.meta.dirname, "..", "dist", "bin", "herald.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "herald-config-check-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The CLI with no HERALD_* variable but `env`, its state under tmp. */
function check(args: string[], env: NodeJS.ProcessEnv = {}) {
  const base = { PATH: process.env["PATH"], HOME: tmp, XDG_RUNTIME_DIR: tmp, XDG_DATA_HOME: tmp };
  const r = spawnSync(process.execPath, [CLI, "config", "check", ...args], {
    env: { ...base, ...env },
    cwd: tmp,
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("herald config check", () => {
  // The lookup ends at the system file when it exists: these cases are about a machine without one.
  it.skipIf(fs.existsSync(SYSTEM_CONFIG_PATH))(
    "without FILE, HERALD_CONFIG unset or empty and no system file, checks defaults + environment",
    () => {
      for (const env of [{}, { HERALD_CONFIG: "" }]) {
        const r = check([], env);
        expect(r.stderr).toBe("");
        expect([r.code, r.stdout]).toEqual([0, "(no file: defaults + environment): ok\n"]);
      }
      const bad = check([], { HERALD_OUTBOX__MAX_MESAGES: "5" });
      expect(bad.code).toBe(3);
      expect(bad.stderr).toContain("HERALD_OUTBOX__MAX_MESSAGES");
    },
  );

  it("prints the file it checked: FILE, --config or HERALD_CONFIG", () => {
    const file = path.join(tmp, "herald.yaml");
    fs.writeFileSync(file, "outbox: {maxMessages: 5}\n");
    expect(check([file]).stdout).toBe(`${file}: ok\n`);
    expect(check(["--config", file]).stdout).toBe(`${file}: ok\n`);
    expect(check([], { HERALD_CONFIG: "herald.yaml" }).stdout).toBe(`${file}: ok\n`);
  });

  it("names where a missing path came from", () => {
    const missing = path.join(tmp, "missing.yaml");
    const positional = check([missing]);
    expect(positional.code).toBe(3);
    expect(positional.stderr).toContain(`${missing} (from the command line) does not exist`);
    expect(check(["--config", missing]).stderr).toContain("(from --config) does not exist");
    expect(check([], { HERALD_CONFIG: missing }).stderr).toContain("(from HERALD_CONFIG) does not exist");
  });
});
