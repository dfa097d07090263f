import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  type ConfigProblem,
  checkConfigFile,
  type LoadOptions,
  loadConfig,
  loadConfigText,
  renderConfig,
} from "../src/config/index.js";
import { ConfigError } from "../src/errors.js";
import {
  DEFAULT_RECONNECT_INTERVAL,
  DEFAULT_RECONNECT_MAX_INTERVAL,
} from "../src/transport/zeromq-common.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "herald-config-test-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const NO_SYSTEM_FILE = path.join(tmp, "no-such-system-file.yaml");
const MACHINE = { uid: 1000, homedir: "/home/ada", hostname: "host-a" };

let fileCounter = 0;
function writeConfig(text: string, name = `herald-${fileCounter++}.yaml`): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, text);
  return file;
}

function load(opts: LoadOptions = {}) {
  return loadConfig({ env: {}, systemPath: NO_SYSTEM_FILE, machine: MACHINE, cwd: tmp, ...opts });
}

function loadText(text: string, env: NodeJS.ProcessEnv = {}) {
  return loadConfig({ configPath: writeConfig(text), env, systemPath: NO_SYSTEM_FILE, machine: MACHINE });
}

/** Run `fn`, expect a ConfigError, return its problems. */
function problemsOf(fn: () => unknown): { error: ConfigError; problems: ConfigProblem[] } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const error = err as ConfigError;
    expect(error.code).toBe("CONFIG");
    return { error, problems: (error.details["problems"] ?? []) as ConfigProblem[] };
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

describe("no file", () => {
  it("yields the documented defaults", () => {
    const { config, file, provenance } = load();
    expect(file).toBeUndefined();
    expect(config.paths).toEqual({
      runtimeDir: "/tmp/herald-1000",
      dataDir: "/home/ada/.local/share/herald",
    });
    expect(config.broker.name).toBe("host-a");
    expect(config.broker.submit).toEqual({ ipc: true, tcp: [], maxBatch: 1000 });
    expect(config.broker.publish).toEqual([
      { name: "herald", endpoint: "tcp://127.0.0.1:9941", format: "herald" },
      { name: "legacy", endpoint: "tcp://127.0.0.1:9940", format: "legacy" },
    ]);
    expect(config.broker.sendHighWaterMark).toBe(10_000);
    expect(config.broker.shutdownGrace).toBe(5_000);
    expect(config.broker.publishDelay).toBe(1_500);
    // A subscriber's longest reconnect wait (libzmq adds up to one reconnectInterval of jitter) must end
    // before a restarted broker publishes, or it misses the first messages (test/forward.test.ts).
    expect(DEFAULT_RECONNECT_MAX_INTERVAL + DEFAULT_RECONNECT_INTERVAL).toBeLessThan(
      config.broker.publishDelay,
    );
    expect(config.outbox).toEqual({
      path: "/home/ada/.local/share/herald/outbox.db",
      synchronous: "full",
      maxMessages: 1_000_000,
      maxBytes: 1024 ** 3,
      retention: 600_000,
      dedupWindow: 600_000,
    });
    expect(config.limits.maxBodyBytes).toBe(1024 ** 2);
    expect(config.client).toEqual({ timeout: 2500, retries: 3 });
    expect(config.sinks).toEqual([]);
    expect(config.sources).toEqual([]);
    expect(config.legacy).toMatchObject({ enabled: false, config: null, grace: 3_600_000, services: {} });
    expect(config.security).toMatchObject({
      keysDir: "/home/ada/.local/share/herald/keys",
      trustDir: "/home/ada/.local/share/herald/trust",
      identity: null,
      clockSkew: 120_000,
      policy: {},
    });
    expect(config.log).toEqual({ level: "info", format: "text" });
    expect(provenance.get("outbox.maxMessages")).toEqual({ source: "default" });
    expect(provenance.get("broker.publish.0.endpoint")).toEqual({ source: "default" });
    expect([...provenance.values()].every((p) => p.source === "default")).toBe(true);
  });

  it("uses root and XDG directories", () => {
    const root = load({ machine: { ...MACHINE, uid: 0 } }).config;
    expect(root.paths).toEqual({ runtimeDir: "/run/herald", dataDir: "/var/lib/herald" });
    expect(root.outbox.path).toBe("/var/lib/herald/outbox.db");
    const xdg = load({ env: { XDG_RUNTIME_DIR: "/run/user/1000", XDG_DATA_HOME: "/data/ada" } }).config;
    expect(xdg.paths).toEqual({ runtimeDir: "/run/user/1000/herald", dataDir: "/data/ada/herald" });
  });

  it("treats an empty or comment-only file as defaults", () => {
    for (const text of ["", "# nothing here\n", "---\n"]) {
      const loaded = loadText(text);
      expect(loaded.config.outbox.maxMessages).toBe(1_000_000);
      expect(loaded.file).toMatch(/herald-\d+\.yaml$/);
    }
  });

  it("keeps a section's defaults when all its keys are commented out", () => {
    const { config } = loadText("outbox:\n#  maxMessages: 5\n");
    expect(config.outbox.maxMessages).toBe(1_000_000);
  });
});

describe("file values", () => {
  it("reads values, normalises units and records file:line provenance", () => {
    const file = writeConfig(
      [
        "broker:",
        "  name: hub-1",
        "  shutdownGrace: 2.5s",
        "  publish:",
        "    - name: only",
        "      endpoint: tcp://0.0.0.0:7000",
        "  publishDelay: 250ms",
        "outbox:",
        "  maxMessages: 5000",
        "  maxBytes: 512MiB",
        "  retention: 1h30m",
        "sinks:",
        "  - name: rabbit",
        "    type: amqp",
        "    heartbeat: 30s",
        "  - name: hub",
        "    type: forward",
        "    endpoint: tcp://hub.example.org:9939",
        "  - name: extra",
        "    type: zeromq",
        "    endpoint: ipc:///tmp/extra.sock",
        "    format: legacy",
        "sources:",
        "  - {name: in, type: amqp, bindings: ['org.#']}",
        "legacy:",
        "  services:",
        "    bodhi.app01: {stage: bridged}",
        "security:",
        "  policy:",
        "    bodhi: ['org.fedoraproject.*.bodhi.#']",
        "",
      ].join("\n"),
    );
    const { config, provenance } = load({ configPath: file });
    expect(config.broker.name).toBe("hub-1");
    expect(config.broker.shutdownGrace).toBe(2500);
    expect(config.broker.publishDelay).toBe(250);
    expect(config.broker.publish).toEqual([
      { name: "only", endpoint: "tcp://0.0.0.0:7000", format: "herald" },
    ]);
    expect(config.outbox.maxMessages).toBe(5000);
    expect(config.outbox.maxBytes).toBe(512 * 1024 ** 2);
    expect(config.outbox.retention).toBe(5_400_000);
    expect(config.sinks[0]).toEqual({
      name: "rabbit",
      type: "amqp",
      url: "amqp://guest:guest@127.0.0.1:5672/%2F",
      exchange: "amq.topic",
      exchangeType: "topic",
      declareExchange: true,
      format: "herald",
      topicPrefix: "",
      inFlight: 256,
      heartbeat: 30_000,
      tls: null,
      thread: true,
    });
    expect(config.sinks[1]).toEqual({
      name: "hub",
      type: "forward",
      endpoint: "tcp://hub.example.org:9939",
      timeout: 2500,
    });
    expect(config.sinks[2]).toEqual({
      name: "extra",
      type: "zeromq",
      endpoint: "ipc:///tmp/extra.sock",
      format: "legacy",
    });
    expect(config.sources[0]).toMatchObject({ name: "in", queue: "", bindings: ["org.#"], format: "auto" });
    expect(config.legacy.services["bodhi.app01"]).toEqual({ stage: "bridged", endpoints: null });
    expect(config.security.policy).toEqual({ bodhi: ["org.fedoraproject.*.bodhi.#"] });
    expect(provenance.get("outbox.maxMessages")).toEqual({ source: "file", file, line: 9 });
    expect(provenance.get("broker.publish.0.endpoint")).toEqual({ source: "file", file, line: 6 });
    expect(provenance.get("sinks.0.exchange")).toEqual({ source: "default" });
    expect(provenance.get("sources.0.bindings")).toEqual({ source: "file", file, line: 24 });
  });

  it("resolves relative paths against the config file's directory", () => {
    const dir = fs.mkdtempSync(path.join(tmp, "rel-"));
    const file = path.join(dir, "herald.yaml");
    fs.writeFileSync(file, "paths:\n  dataDir: ./state\n");
    const { config } = load({ configPath: file });
    expect(config.paths.dataDir).toBe(path.join(dir, "state"));
  });

  it("moves outbox.path and key dirs with paths.dataDir unless set explicitly", () => {
    const moved = loadText("paths:\n  dataDir: /srv/herald\n").config;
    expect(moved.outbox.path).toBe("/srv/herald/outbox.db");
    expect(moved.security.keysDir).toBe("/srv/herald/keys");
    expect(moved.security.trustDir).toBe("/srv/herald/trust");
    const pinned = loadText("paths:\n  dataDir: /srv/herald\noutbox:\n  path: /fast/outbox.db\n").config;
    expect(pinned.outbox.path).toBe("/fast/outbox.db");
    expect(pinned.security.keysDir).toBe("/srv/herald/keys");
    const viaEnv = load({ env: { HERALD_PATHS__DATA_DIR: "/env/herald" } }).config;
    expect(viaEnv.outbox.path).toBe("/env/herald/outbox.db");
  });
});

describe("validation errors", () => {
  it("names an unknown key with a suggestion, file, line and column", () => {
    const file = writeConfig("outbox:\n  maxMessages: 5\n  maxMesages: 6\n");
    const { error, problems } = problemsOf(() => load({ configPath: file }));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      path: "outbox.maxMesages",
      file,
      line: 3,
      column: 3,
      suggestion: "maxMessages",
    });
    expect(error.message).toContain(`${file}:3:3`);
    expect(error.message).toContain('did you mean "maxMessages"?');
  });

  it("suggests camelCase for snake_case keys and top-level typos", () => {
    const { problems } = problemsOf(() => loadText("outbx: {}\nlimits:\n  max_body_bytes: 1MiB\n"));
    expect(problems.map((p) => p.suggestion)).toEqual(["outbox", "maxBodyBytes"]);
  });

  it("lists the allowed keys when nothing is close", () => {
    const { problems } = problemsOf(() => loadText("log:\n  zzzzzzzz: 1\n"));
    expect(problems[0]?.message).toContain("allowed keys: level, format");
  });

  it("says expected vs got for wrong types, naming key, file and line", () => {
    const file = writeConfig("client:\n  retries: lots\nbroker:\n  submit:\n    ipc: 1\n");
    const { error, problems } = problemsOf(() => load({ configPath: file }));
    expect(problems).toEqual([
      expect.objectContaining({ path: "client.retries", file, line: 2, column: 12 }),
      expect.objectContaining({ path: "broker.submit.ipc", file, line: 5 }),
    ]);
    expect(problems[0]?.message).toBe('expected a whole number, got string "lots"');
    expect(problems[1]?.message).toBe("expected true or false, got number 1");
    expect(error.message.split("\n")).toHaveLength(3);
  });

  it("lists allowed values for a bad enum", () => {
    const { problems } = problemsOf(() => loadText("log:\n  level: verbose\noutbox:\n  synchronous: ful\n"));
    expect(problems[0]).toMatchObject({ path: "log.level", line: 2 });
    expect(problems[0]?.message).toContain("expected one of debug, info, warn, error");
    expect(problems[1]).toMatchObject({ path: "outbox.synchronous", suggestion: "full" });
  });

  it("checks sink types, required keys, endpoints, units and duplicate names", () => {
    const text = [
      "sinks:",
      "  - {name: a, type: forwrd, endpoint: tcp://h:1}",
      "  - {name: b, type: forward}",
      "  - {name: c, type: forward, endpoint: hub:9939}",
      "  - {name: d, type: amqp, heartbeat: soon}",
      "  - {name: herald, type: zeromq, endpoint: 'tcp://*:1'}",
      "  - {type: amqp}",
      "  - {name: legacy-shim, type: forward, endpoint: 'tcp://h:1'}",
      "",
    ].join("\n");
    const { problems } = problemsOf(() => loadText(text));
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p]));
    expect(byPath["sinks.0.type"]).toMatchObject({ line: 2, suggestion: "forward" });
    expect(byPath["sinks.1"]?.message).toBe('missing required key "endpoint"');
    expect(byPath["sinks.2.endpoint"]?.message).toContain("expected a ZeroMQ endpoint");
    expect(byPath["sinks.3.heartbeat"]?.message).toContain('invalid duration "soon"');
    expect(byPath["sinks.4.name"]?.message).toContain(
      'duplicate name "herald" (already used by broker.publish.0)',
    );
    expect(byPath["sinks.5"]?.message).toBe('missing required key "name"');
    // The in-broker shim's sink has that name: a second output would share its outbox cursor.
    expect(byPath["sinks.6.name"]?.message).toContain(
      `duplicate name "legacy-shim" (already used by the in-broker migration shim's own sink)`,
    );
    expect(problems).toHaveLength(7);
  });

  it("takes a legacy service with nothing under it as the service with every default", () => {
    const { config } = loadText("legacy:\n  services:\n    bodhi.app01:\n    koji.hub: {stage: bridged}\n");
    expect(config.legacy.services["bodhi.app01"]).toEqual({ stage: "legacy", endpoints: null });
    expect(config.legacy.services["koji.hub"]).toEqual({ stage: "bridged", endpoints: null });
  });

  it("checks the legacy services' fedmsg endpoints as the shim will use them (a reload finds none bad)", () => {
    const text = [
      "legacy:",
      "  relayInbound: tcp://relay",
      "  services:",
      "    bodhi.app01: {stage: legacy, endpoints: ['tcp://app01.example.org:3000', 'tcp://app02.example.org']}",
      "    koji.hub: {stage: bridged, endpoints: ['ipc:///run/koji.sock', 'tcp://*:70000']}",
      "",
    ].join("\n");
    const { problems } = problemsOf(() => loadText(text));
    expect(problems.map((p) => [p.path, p.line])).toEqual([
      ["legacy.relayInbound", 2],
      ["legacy.services.bodhi.app01.endpoints.1", 4],
      ["legacy.services.koji.hub.endpoints.1", 5],
    ]);
    expect(problems[1]?.message).toBe('"tcp://app02.example.org": expected tcp://host:port or ipc://path');
    expect(problems[2]?.message).toContain("port 70000 is out of range");
  });

  it("rejects a top level that is not a mapping", () => {
    const { problems } = problemsOf(() => loadText("- a\n- b\n"));
    expect(problems[0]?.message).toContain("top level must be a mapping");
  });

  it("reports YAML syntax errors with file and line", () => {
    const file = writeConfig("outbox:\n  maxMessages: 5\nbroker: [unclosed\nlog: {}\n");
    const { error, problems } = problemsOf(() => load({ configPath: file }));
    expect(problems[0]).toMatchObject({ file });
    expect(problems[0]?.line).toBeGreaterThanOrEqual(3);
    expect(error.message).toContain(`${file}:${problems[0]?.line}`);
    expect(error.message).toContain("YAML syntax");
  });

  it("reports duplicate keys", () => {
    const { problems } = problemsOf(() => loadText("log:\n  level: info\n  level: debug\n"));
    expect(problems[0]).toMatchObject({ line: 3 });
    expect(problems[0]?.message).toContain("unique");
  });
});

describe("file lookup", () => {
  it("uses HERALD_CONFIG when no configPath is given, relative to cwd", () => {
    const file = writeConfig("log:\n  level: debug\n", "from-env.yaml");
    const loaded = load({ env: { HERALD_CONFIG: "from-env.yaml" }, cwd: tmp });
    expect(loaded.file).toBe(file);
    expect(loaded.config.log.level).toBe("debug");
  });

  it("prefers configPath over HERALD_CONFIG over the system file", () => {
    const a = writeConfig("log: {level: warn}\n");
    const b = writeConfig("log: {level: error}\n");
    const sys = writeConfig("log: {level: debug}\n");
    expect(load({ configPath: a, env: { HERALD_CONFIG: b }, systemPath: sys }).config.log.level).toBe("warn");
    expect(load({ env: { HERALD_CONFIG: b }, systemPath: sys }).config.log.level).toBe("error");
    expect(load({ systemPath: sys }).file).toBe(sys);
  });

  it("fails naming a missing explicit file", () => {
    const missing = path.join(tmp, "nope.yaml");
    expect(() => load({ configPath: missing })).toThrow(/nope\.yaml.*does not exist/);
    const viaEnv = problemsOf(() => load({ env: { HERALD_CONFIG: missing } }));
    expect(viaEnv.error.message).toContain("HERALD_CONFIG");
  });

  it("fails readably when the path is a directory", () => {
    const { error } = problemsOf(() => load({ configPath: tmp }));
    expect(error.message).toContain("cannot read config file");
  });
});

describe("environment overrides", () => {
  it("overrides numbers, booleans, arrays, nested keys and array items, winning over the file", () => {
    const file = writeConfig("outbox:\n  maxMessages: 10\nlimits:\n  maxBodyBytes: 2KiB\n");
    const { config, provenance } = load({
      configPath: file,
      env: {
        HERALD_OUTBOX__MAX_MESSAGES: "5000",
        HERALD_LIMITS__MAX_BODY_BYTES: "2MiB",
        HERALD_LEGACY__ENABLED: "true",
        HERALD_BROKER__SUBMIT__TCP: "[tcp://127.0.0.1:9939, tcp://10.0.0.1:9939]",
        HERALD_BROKER__PUBLISH__1__ENDPOINT: "tcp://0.0.0.0:9940",
        HERALD_SECURITY__CLOCK_SKEW: "30s",
        HERALD_SINKS__0__TOPIC_PREFIX: "",
        HERALD_SINKS: "[{name: r, type: amqp, url: 'amqp://u:p@mq/%2F'}]",
        HERALD_SINKS__1__NAME: "hub",
        HERALD_SINKS__1__TYPE: "forward",
        HERALD_SINKS__1__ENDPOINT: "tcp://hub:9939",
        UNRELATED: "x",
      },
    });
    expect(config.outbox.maxMessages).toBe(5000);
    expect(config.limits.maxBodyBytes).toBe(2 * 1024 ** 2);
    expect(config.legacy.enabled).toBe(true);
    expect(config.broker.submit.tcp).toEqual(["tcp://127.0.0.1:9939", "tcp://10.0.0.1:9939"]);
    expect(config.broker.publish[1]).toEqual({
      name: "legacy",
      endpoint: "tcp://0.0.0.0:9940",
      format: "legacy",
    });
    expect(config.security.clockSkew).toBe(30_000);
    expect(config.sinks[0]).toMatchObject({ name: "r", url: "amqp://u:p@mq/%2F", topicPrefix: "" });
    expect(config.sinks[1]).toEqual({
      name: "hub",
      type: "forward",
      endpoint: "tcp://hub:9939",
      timeout: 2500,
    });
    const env = (v: string) => ({ source: "env", envVar: v });
    expect(provenance.get("outbox.maxMessages")).toEqual(env("HERALD_OUTBOX__MAX_MESSAGES"));
    expect(provenance.get("limits.maxBodyBytes")).toEqual(env("HERALD_LIMITS__MAX_BODY_BYTES"));
    expect(provenance.get("broker.submit.tcp")).toEqual(env("HERALD_BROKER__SUBMIT__TCP"));
    expect(provenance.get("broker.publish.1.endpoint")).toEqual(env("HERALD_BROKER__PUBLISH__1__ENDPOINT"));
    expect(provenance.get("broker.publish.1.name")).toEqual({ source: "default" });
    expect(provenance.get("sinks.0.url")).toEqual(env("HERALD_SINKS"));
    expect(provenance.get("sinks.0.topicPrefix")).toEqual(env("HERALD_SINKS__0__TOPIC_PREFIX"));
    expect(provenance.get("sinks.0.exchange")).toEqual({ source: "default" });
    expect(provenance.get("sinks.1.timeout")).toEqual({ source: "default" });
  });

  it("sets one element of a scalar list", () => {
    const { config, provenance } = loadText("broker:\n  submit:\n    tcp: [tcp://a:1, tcp://b:2]\n", {
      HERALD_BROKER__SUBMIT__TCP__1: "tcp://c:3",
    });
    expect(config.broker.submit.tcp).toEqual(["tcp://a:1", "tcp://c:3"]);
    expect(provenance.get("broker.submit.tcp")).toEqual({
      source: "env",
      envVar: "HERALD_BROKER__SUBMIT__TCP__1",
    });
  });

  it("matches free-form map keys that exist in the file", () => {
    const { config } = loadText("legacy:\n  services:\n    bodhi.app01: {stage: legacy}\n", {
      HERALD_LEGACY__SERVICES__BODHI_APP01__STAGE: "retired",
    });
    expect(config.legacy.services["bodhi.app01"]?.stage).toBe("retired");
  });

  it("rejects unknown env keys with a suggestion naming the variable", () => {
    const { error, problems } = problemsOf(() =>
      load({ env: { HERALD_OUTBOX__MAX_MESAGES: "1", HERALD_LOGG: "x" } }),
    );
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatchObject({
      envVar: "HERALD_LOGG",
      suggestion: "HERALD_LOG (log)",
    });
    expect(problems[1]).toMatchObject({
      envVar: "HERALD_OUTBOX__MAX_MESAGES",
      suggestion: "HERALD_OUTBOX__MAX_MESSAGES (outbox.maxMessages)",
    });
    expect(error.message).toContain("env HERALD_OUTBOX__MAX_MESAGES");
    expect(error.message).toContain("did you mean HERALD_OUTBOX__MAX_MESSAGES");
  });

  it("names the variable when its value is invalid", () => {
    const { problems } = problemsOf(() =>
      load({
        env: { HERALD_LEGACY__ENABLED: "yes", HERALD_SINKS__3__NAME: "x", HERALD_OUTBOX: "{maxMesages: 1}" },
      }),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          envVar: "HERALD_LEGACY__ENABLED",
          message: 'expected true or false, got string "yes"',
        }),
        expect.objectContaining({
          envVar: "HERALD_SINKS__3__NAME",
          message: expect.stringContaining("skips items"),
        }),
        expect.objectContaining({ envVar: "HERALD_OUTBOX", suggestion: "maxMessages" }),
      ]),
    );
  });

  it("ignores HERALD_CONFIG as a key", () => {
    const file = writeConfig("");
    expect(load({ env: { HERALD_CONFIG: file } }).config.log.level).toBe("info");
  });
});

describe("renderConfig", () => {
  it("shows every leaf with its origin and masks passwords", () => {
    const file = writeConfig(
      "outbox:\n  maxMessages: 42\nsinks:\n  - {name: r, type: amqp, url: 'amqp://bob:s3cret@mq/%2F'}\n",
    );
    const loaded = load({ configPath: file, env: { HERALD_LOG__LEVEL: "debug" } });
    const yaml = renderConfig(loaded, { format: "yaml" });
    const name = path.basename(file);
    expect(yaml).toContain(`maxMessages: 42 # ${name}:2`);
    expect(yaml).toContain("level: debug # env HERALD_LOG__LEVEL");
    expect(yaml).toContain("retention: 10m # default");
    expect(yaml).toContain("maxBytes: 1GiB # default");
    expect(yaml).toContain("amqp://bob:***@mq/%2F");
    expect(yaml).not.toContain("s3cret");
    expect(renderConfig(loaded, { format: "yaml", showSecrets: true })).toContain("s3cret");
    // The rendered YAML is itself a valid config that loads to the same values.
    const again = loadText(renderConfig(loaded, { format: "yaml", showSecrets: true })).config;
    expect(again).toEqual(loaded.config);
  });

  it("renders JSON with normalised numbers", () => {
    const json = JSON.parse(renderConfig(load(), { format: "json" })) as { outbox: { retention: number } };
    expect(json.outbox.retention).toBe(600_000);
  });
});

describe("checkConfigFile", () => {
  it("returns ok with the config, or the ConfigError", () => {
    const good = checkConfigFile(writeConfig("log: {level: warn}\n"), {});
    expect(good.ok && good.config.log.level).toBe("warn");
    const bad = checkConfigFile(writeConfig("log: {levl: warn}\n"), {});
    expect(bad.ok).toBe(false);
    if (!bad.ok) expect(bad.error.message).toContain('did you mean "level"');
    const missing = checkConfigFile(path.join(tmp, "missing.yaml"), {});
    expect(missing.ok).toBe(false);
  });
});

describe("edge cases", () => {
  it("rejects __proto__ keys as unknown without polluting prototypes", () => {
    const { problems } = problemsOf(() =>
      loadText("__proto__: {polluted: true}\nlog:\n  __proto__: {x: 1}\n"),
    );
    expect(problems.map((p) => p.path)).toEqual(["__proto__", "log.__proto__"]);
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
  });

  it("rejects an empty env key segment", () => {
    const { problems } = problemsOf(() =>
      load({ env: { HERALD_LOG____LEVEL: "info", HERALD_LOG___LEVEL: "info" } }),
    );
    expect(problems[0]?.message).toContain("empty key segment");
    expect(problems[1]?.suggestion).toBe("HERALD_LOG__LEVEL (log.level)");
  });

  it("attributes values reached through YAML aliases to the file", () => {
    const file = writeConfig(
      "client:\n  timeout: &t 3s\nsinks:\n  - &hub {name: hub, type: forward, endpoint: 'tcp://h:1', timeout: *t}\n",
    );
    const { config, provenance } = load({ configPath: file });
    expect(config.sinks[0]).toMatchObject({ timeout: 3000 });
    expect(provenance.get("sinks.0.timeout")).toMatchObject({ source: "file", line: 4 });
    expect(provenance.get("client.retries")).toEqual({ source: "default" });
  });

  it("enforces minimums on durations and sizes written with units", () => {
    const { problems } = problemsOf(() =>
      loadText("client:\n  timeout: 0s\nlimits:\n  maxBodyBytes: 0KiB\n"),
    );
    expect(problems.map((p) => [p.path, p.message])).toEqual([
      ["client.timeout", "must be at least 1ms"],
      ["limits.maxBodyBytes", "must be at least 1B"],
    ]);
  });
});

describe("loadConfigText", () => {
  it("works without any file", () => {
    expect(loadConfigText(undefined, { env: {}, machine: MACHINE }).config.broker.name).toBe("host-a");
  });
});
