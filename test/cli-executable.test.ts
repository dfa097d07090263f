import { spawnSync } from "node:child_process";
import {
  accessSync,
  chmodSync,
  constants,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DAEMON_NODE_FLAGS } from "../src/cli/node-flags.js";
import { CLI, LAUNCHER, ROOT } from "./helpers/serve.js";

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: Record<string, string> };
const tmp = mkdtempSync(join(tmpdir(), "herald-launcher-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A `node` first on PATH that prints the arguments it was given, one per line. */
function fakeNodePath(): string {
  const bin = join(tmp, "fake-bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "node"), '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n');
  chmodSync(join(bin, "node"), 0o755);
  return `${bin}:${process.env.PATH ?? ""}`;
}

describe("the herald executable", () => {
  it("is package.json's bin, executable, and runs the CLI", () => {
    expect(join(ROOT, pkg.bin.herald ?? "")).toBe(LAUNCHER);
    expect(() => accessSync(LAUNCHER, constants.X_OK)).not.toThrow();
    const r = spawnSync(LAUNCHER, ["--help"], { encoding: "utf8", timeout: 30_000 });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: herald COMMAND/);
  });

  it("finds the bundle beside itself when run through a symlink, as npm links bins", () => {
    const link = join(tmp, "herald");
    symlinkSync(LAUNCHER, link);
    const r = spawnSync(link, ["--version"], { encoding: "utf8", cwd: tmp, timeout: 30_000 });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("herald 0.1.0");
  });

  it("gives serve and shim the V8 heap flags and every other command none", () => {
    const env = { ...process.env, PATH: fakeNodePath() };
    const args = (cmd: string) =>
      spawnSync(LAUNCHER, [cmd, "x y"], { encoding: "utf8", env }).stdout.trim().split("\n");
    for (const daemon of ["serve", "shim"])
      expect(args(daemon)).toEqual([...DAEMON_NODE_FLAGS, CLI, daemon, "x y"]);
    for (const oneShot of ["publish", "status", "tail", "--help"])
      expect(args(oneShot)).toEqual([CLI, oneShot, "x y"]);
  });

  it("is a bundle: its entry imports no herald module from dist/ beside it, only npm packages and chunks", () => {
    const source = readFileSync(CLI, "utf8");
    const specifiers = [...source.matchAll(/\bfrom\s+"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)/g)].map(
      (m) => m[1] ?? m[2],
    );
    expect(specifiers.length).toBeGreaterThan(0);
    for (const s of specifiers)
      expect(s).toMatch(/^(\.\/chunk-[\w-]+\.js|\.\/[\w-]+\.js|node:.+|[a-z@][^.]*)$/);
    expect(specifiers.some((s) => s?.startsWith("../"))).toBe(false);
  });
});
