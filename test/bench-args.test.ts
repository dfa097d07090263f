import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

// The benchmark's options for the real peers' source trees: a wrong directory is a usage error that names
// the fix before any figure runs (a full run takes 15 minutes; failing at the end would waste it).
const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), "herald-bench-args-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const run = (...args: string[]) =>
  spawnSync(process.execPath, ["bench/run.mjs", ...args], { encoding: "utf8", timeout: 30_000 });

describe("bench/run.mjs --fedmsg-src / --fedora-messaging-src", () => {
  it("refuses a directory without the package, naming what to pass", () => {
    const empty = tempDir();
    const r = run("--fedmsg-src", empty, "--only", "raw");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`--fedmsg-src ${empty}: no fedmsg/__init__.py there`);
    expect(r.stderr).toContain("fedora-infra/fedmsg");
    const fm = run("--fedora-messaging-src", empty, "--only", "raw");
    expect(fm.status).toBe(2);
    expect(fm.stderr).toContain("no fedora_messaging/__init__.py there");
  });

  it("lists both options in its usage", () => {
    const r = run("--help");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("[--fedmsg-src DIR] [--fedora-messaging-src DIR]");
  });

  it("accepts a tree that holds the package (validation only: --only with no group measures nothing)", () => {
    const tree = tempDir();
    mkdirSync(join(tree, "fedmsg"));
    writeFileSync(join(tree, "fedmsg", "__init__.py"), "");
    const r = run("--fedmsg-src", tree, "--only", "", "--no-results");
    expect(r.stderr).not.toContain("no fedmsg/__init__.py");
    expect(r.status).toBe(0);
  });
});

describe("bench/run.mjs --reps / --backlog", () => {
  // `--reps x` used to run 0 repetitions and report every figure as measured; refused before anything runs.
  it.each([
    ["--reps", "x"],
    ["--reps", "0"],
    ["--reps", "2.5"],
    ["--backlog", "x"],
    ["--backlog", "-5"],
  ])("refuses %s %s with exit 2", (opt, value) => {
    const r = run(opt, value, "--only", "", "--no-results");
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${opt} needs a positive integer, got "${value}"`);
  });

  it("warns that a full run with fewer than 3 repetitions is not recorded", () => {
    const r = run("--reps", "2", "--only", "", "--no-results");
    expect(r.status).toBe(0);
    expect(r.stderr).toContain("--reps 2 is below the 3 repetitions");
  });
});
