import { spawnSync } from "node:child_process";
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { COMMAND_MODULES, DAEMON_NODE_FLAGS } from "../src/cli/launcher.js";
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

/**
 * Run `program` (the installed `herald`) with args; `list` is a JavaScript expression for an array of
 * strings that a --require hook writes to stderr at exit (the modules the command loaded). The list is
 * taken before process.stderr is first touched: building that stream loads modules of its own.
 */
function loadedBy(
  args: string[],
  list: string,
  program = LAUNCHER,
  extraEnv: NodeJS.ProcessEnv = {},
): { status: number | null; loaded: string[]; stdout: string } {
  const report = join(tmp, "report-loaded.cjs");
  writeFileSync(
    report,
    `process.on("exit", () => { const l = JSON.stringify(${list}); process.stderr.write(l + "\\n"); });\n`,
  );
  const env = {
    ...process.env,
    NODE_OPTIONS: `--require ${report}`,
    HERALD_CONFIG: "",
    HERALD_LOG_LEVEL: "error",
    ...extraEnv,
  };
  const r = spawnSync(program, args, { encoding: "utf8", env, timeout: 30_000 });
  const loaded = JSON.parse(r.stderr.trim().split("\n").at(-1) ?? "[]") as string[];
  return { status: r.status, loaded, stdout: r.stdout };
}

/**
 * A copy of the project's layout in `tmp` whose zeromq reports `version`: node_modules and dist/ are
 * symlinks but for zeromq's package.json (a copy) and dist/bin (only herald-publish.cjs, copied, so
 * that it resolves packages from the copy).
 */
function treeWithZeromq(name: string, version: string): string {
  const tree = join(tmp, name);
  const link = (from: string, to: string, skip: string) => {
    mkdirSync(to, { recursive: true });
    for (const e of readdirSync(from)) if (e !== skip) symlinkSync(join(from, e), join(to, e));
  };
  link(join(ROOT, "node_modules"), join(tree, "node_modules"), "zeromq");
  link(join(ROOT, "node_modules", "zeromq"), join(tree, "node_modules", "zeromq"), "package.json");
  const zmqPkg = JSON.parse(readFileSync(join(ROOT, "node_modules", "zeromq", "package.json"), "utf8"));
  writeFileSync(join(tree, "node_modules", "zeromq", "package.json"), JSON.stringify({ ...zmqPkg, version }));
  link(join(ROOT, "dist"), join(tree, "dist"), "bin");
  mkdirSync(join(tree, "dist", "bin"));
  copyFileSync(join(dirname(CLI), "herald-publish.cjs"), join(tree, "dist", "bin", "herald-publish.cjs"));
  return join(tree, "dist", "bin", "herald-publish.cjs");
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

  it("finds the bundle when found on PATH, given by a relative path, or read by sh by its bare name", () => {
    const version = (cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }) =>
      spawnSync(cmd, args, { encoding: "utf8", timeout: 30_000, ...opts }).stdout.trim();
    const env = { ...process.env, PATH: `${dirname(LAUNCHER)}:${process.env.PATH ?? ""}` };
    expect(version("herald", ["--version"], { cwd: tmp, env })).toBe("herald 0.1.0");
    expect(version("./herald", ["--version"], { cwd: dirname(LAUNCHER) })).toBe("herald 0.1.0");
    expect(version("sh", ["herald", "--version"], { cwd: dirname(LAUNCHER) })).toBe("herald 0.1.0");
    // A chain of symlinks, as a global install's PATH entry pointing into the package.
    const link2 = join(tmp, "herald-2");
    symlinkSync(join(tmp, "herald-1"), link2);
    symlinkSync(LAUNCHER, join(tmp, "herald-1"));
    expect(version(link2, ["--version"], { cwd: tmp })).toBe("herald 0.1.0");
  });

  it("runs each command's own bundle, with the V8 heap flags for serve and shim only", () => {
    const env = { ...process.env, PATH: fakeNodePath() };
    const args = (cmd: string) =>
      spawnSync(LAUNCHER, [cmd, "x y"], { encoding: "utf8", env }).stdout.trim().split("\n");
    const bundle = (cmd: string) => join(dirname(CLI), `herald-${cmd}.cjs`);
    for (const daemon of ["serve", "shim"])
      expect(args(daemon)).toEqual([...DAEMON_NODE_FLAGS, bundle(daemon), daemon, "x y"]);
    for (const oneShot of ["publish", "status", "tail", "replay"])
      expect(args(oneShot)).toEqual([bundle(oneShot), oneShot, "x y"]);
    for (const other of ["--help", "--version", "nonsense"]) expect(args(other)).toEqual([CLI, other, "x y"]);
  });

  it("knows every command main.ts dispatches, and each command's bundle runs it", () => {
    const main = readFileSync(join(ROOT, "src", "cli", "main.ts"), "utf8");
    const dispatched = Object.fromEntries(
      [...main.matchAll(/^ {2}(\w+): async \(\) => \(await import\("\.\/([\w-]+\.js)"\)\)\.(\w+),$/gm)].map(
        (m) => [m[1], { module: m[2], exportName: m[3] }],
      ),
    );
    expect(Object.keys(dispatched).length).toBeGreaterThan(10);
    expect(COMMAND_MODULES).toEqual(dispatched);
    for (const cmd of Object.keys(COMMAND_MODULES)) {
      const r = spawnSync(LAUNCHER, [cmd, "--help"], { encoding: "utf8", timeout: 30_000 });
      expect(r.stderr, cmd).toBe("");
      expect(r.status, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(new RegExp(`^usage: herald ${cmd}\\b`));
    }
  });

  it("reports a command's own errors with their exit codes from its bundle", () => {
    const usage = spawnSync(LAUNCHER, ["publish"], { encoding: "utf8", timeout: 30_000 });
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/^herald: TOPIC is required/);
    const endpoint = `ipc://${join(tmp, "nobody.sock")}`;
    const down = spawnSync(LAUNCHER, ["publish", "a.b", "{}", "--endpoint", endpoint], {
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(down.status).toBe(4);
    expect(down.stderr).toContain(`herald: NO_BROKER: no broker at ${endpoint}`);
  });

  it("validates configuration with the generated validator from a command's bundle, not ajv's compiler", () => {
    // Sections holding the defaults are not validated again: set one, whose schema needs the helper.
    const env = { HERALD_PATHS__DATA_DIR: join(tmp, "data") };
    const { status, loaded, stdout } = loadedBy(
      ["config", "show"],
      "Object.keys(require.cache)",
      LAUNCHER,
      env,
    );
    expect(status).toBe(0);
    expect(stdout).toContain(join(tmp, "data"));
    // The generated code requires ajv's small run-time helper; compiling would load ajv's core.
    expect(loaded.some((f) => /ajv[\\/]dist[\\/]runtime[\\/]ucs2length/.test(f))).toBe(true);
    expect(loaded.filter((f) => /ajv[\\/]dist[\\/](core|compile)/.test(f))).toEqual([]);
    // The bundle carries the validator's fingerprint: it does not recompute it from ajv's package.json.
    expect(loaded.filter((f) => /ajv[\\/]package\.json/.test(f))).toEqual([]);
  });

  it("publishes without loading node:crypto when nothing is signed (util/node-crypto.ts)", () => {
    // The message is built (its id drawn from the random pool) before the missing broker is noticed.
    const endpoint = `ipc://${join(tmp, "nobody.sock")}`;
    const args = ["publish", "a.b", "{}", "--endpoint", endpoint];
    const { status, loaded } = loadedBy(args, "process.moduleLoadList");
    expect(status).toBe(4);
    expect(loaded).toContain("NativeModule fs");
    expect(loaded.filter((m) => /crypto/.test(m))).toEqual([]);
  });

  it("writes its output by descriptor, without building process.stdout (cli/stdout.ts)", () => {
    const { status, loaded, stdout } = loadedBy(["config", "show"], "process.moduleLoadList");
    expect(status).toBe(0);
    expect(stdout).toMatch(/^outbox:/m);
    expect(loaded).toContain("NativeModule fs");
    const streams = /^NativeModule (stream|net|tty|internal\/fs\/sync_write_stream)$/;
    expect(loaded.filter((m) => streams.test(m))).toEqual([]);
  });

  it("carries zeromq's JavaScript in a command's bundle and loads only the addon (bundle-cli.mjs)", () => {
    const args = ["publish", "a.b", "{}", "--endpoint", `ipc://${join(tmp, "nobody.sock")}`];
    const cache = "Object.keys(require.cache)";
    const { status, loaded } = loadedBy(args, cache);
    expect(status).toBe(4);
    expect(loaded.filter((f) => f.endsWith(".node"))).toEqual([
      expect.stringMatching(/node_modules[\\/]zeromq[\\/]build[\\/].*addon\.node$/),
    ]);
    expect(loaded.filter((f) => /zeromq[\\/]lib|cmake-ts/.test(f))).toEqual([]);
    // Nothing resolved a package's "exports" map, which loads Node's ES module resolver.
    const modules = loadedBy(args, "process.moduleLoadList").loaded;
    expect(modules).toContain("NativeModule fs");
    expect(modules.filter((m) => /esm[\\/]resolve/.test(m))).toEqual([]);
  });

  it("requires the installed zeromq as usual when it is not the version bundled", () => {
    const cache = "Object.keys(require.cache)";
    const args = (file: string) => [
      file,
      "publish",
      "a.b",
      "{}",
      "--endpoint",
      `ipc://${join(tmp, "n.sock")}`,
    ];
    const zmqLib = (files: string[]) => files.filter((f) => /zeromq[\\/]lib[\\/]index\.js$/.test(f));
    const bundled = JSON.parse(readFileSync(join(ROOT, "node_modules", "zeromq", "package.json"), "utf8"));
    const same = loadedBy(args(treeWithZeromq("same", bundled.version)), cache, process.execPath);
    expect(same.status).toBe(4);
    expect(zmqLib(same.loaded)).toEqual([]);
    const other = loadedBy(args(treeWithZeromq("other", "6.99.0")), cache, process.execPath);
    expect(other.status).toBe(4);
    expect(zmqLib(other.loaded)).toHaveLength(1);
    expect(other.loaded.filter((f) => f.endsWith("addon.node"))).toHaveLength(1);
  });

  it("is bundled: the whole CLI imports only its chunks and npm packages, each command's bundle only packages", () => {
    const specifiers = (file: string) =>
      [
        ...readFileSync(file, "utf8").matchAll(
          /\bfrom\s+"([^"]+)"|\bimport\(\s*"([^"]+)"\s*\)|\brequire\(\s*"([^"]+)"\s*\)/g,
        ),
      ].map((m) => m[1] ?? m[2] ?? m[3] ?? "");
    const whole = specifiers(CLI);
    expect(whole.length).toBeGreaterThan(0);
    for (const s of whole) expect(s).toMatch(/^(\.\/[\w-]+\.js|node:.+|[a-z@][^.]*)$/);
    // A command's bundle is CommonJS: no ES module loader for a one-shot command (launcher.ts).
    const publishFile = join(dirname(CLI), "herald-publish.cjs");
    expect(readFileSync(publishFile, "utf8")).not.toMatch(/^\s*(import|export)\s/m);
    const publish = specifiers(publishFile);
    expect(publish).toContain("node:fs");
    // zeromq's package.json: where to load its addon from (bundle-cli.mjs).
    for (const s of publish) expect(s).toMatch(/^(node:.+|[a-z@][^.]*|zeromq\/package\.json)$/);
  });
});
