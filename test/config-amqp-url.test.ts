/**
 * AMQP URLs that cannot parse (fuzz review): `url: "amqp://[::"` passed the schema's pattern and
 * `herald config check`, and `herald serve` then retried connecting forever, logging "Invalid URL". They
 * are refused at load now, naming the key, its line and the fix (exit 3), and by the transport itself.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type ConfigProblem, loadConfig } from "../src/config/index.js";
import { ConfigError } from "../src/errors.js";
import { resolveAmqpOptions } from "../src/transport/amqp-options.js";

const CLI = path.resolve(import.meta.dirname, "..", "dist", "bin", "herald.js");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "herald-amqp-url-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const CONFIG = [
  "sinks:",
  '  - {name: a, type: amqp, url: "amqp://[::"}',
  '  - {name: b, type: amqp, url: "amqp://guest:guest@127.0.0.1:5672/%2F"}',
  '  - {name: c, type: amqp, url: "amqp://u:secret@host:99999/"}',
  "sources:",
  "  - name: d",
  "    type: amqp",
  '    url: "amqps://[::1"',
  '  - {name: e, type: amqp, url: "amqp://[::1]:5672/"}',
  "",
].join("\n");

function problemsOf(text: string): ConfigProblem[] {
  const file = path.join(tmp, `c-${Math.random().toString(36).slice(2)}.yaml`);
  fs.writeFileSync(file, text);
  try {
    loadConfig({ configPath: file, env: {}, systemPath: path.join(tmp, "none.yaml"), cwd: tmp });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return ((err as ConfigError).details["problems"] ?? []) as ConfigProblem[];
  }
  return [];
}

describe("AMQP urls that do not parse", () => {
  it("are refused at load, each at its key and line, password hidden", () => {
    const problems = problemsOf(CONFIG);
    expect(problems.map((p) => [p.path, p.line])).toEqual([
      ["sinks.0.url", 2],
      ["sinks.2.url", 4],
      ["sources.0.url", 8],
    ]);
    expect(problems[0]?.message).toMatch(
      /^"amqp:\/\/\[::": not a valid URL: write it as amqp:\/\/user:password@host/,
    );
    expect(problems[1]?.message).toContain('"amqp://u:***@host:99999/"');
    expect(problems[1]?.message).not.toContain("secret");
  });

  it("fail `herald config check` with exit 3", () => {
    const file = path.join(tmp, "check.yaml");
    fs.writeFileSync(file, CONFIG);
    const r = spawnSync(process.execPath, [CLI, "config", "check", file], {
      env: { PATH: process.env["PATH"], HOME: tmp, XDG_RUNTIME_DIR: tmp, XDG_DATA_HOME: tmp },
      cwd: tmp,
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.status, r.stderr).toBe(3);
    expect(r.stderr).toContain("sinks.0.url");
    expect(r.stderr).toContain("sources.0.url");
  });

  it("are refused by the transport's options too (library use)", () => {
    expect(() => resolveAmqpOptions({ name: "x", url: "amqp://[::" })).toThrow(
      /AMQP url 'amqp:\/\/\[::' of 'x': not a valid URL/,
    );
    expect(resolveAmqpOptions({ name: "x", url: "amqp://[::1]:5672/" }).url).toBe("amqp://[::1]:5672/");
  });
});
