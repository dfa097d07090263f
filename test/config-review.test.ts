/**
 * Configuration review fixes: env mappings merge, endpoints checked at load, nullable TLS paths and the
 * show -> check round trip, config check's file lookup, timer durations capped, security.serverKey
 * resolved as a path, cross-key checks at load, all-commented lists.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { outboxOptions } from "../src/broker/from-config.js";
import { configServerKey } from "../src/client/security.js";
import {
  type ConfigProblem,
  checkConfigFile,
  type LoadOptions,
  loadConfig,
  renderConfig,
} from "../src/config/index.js";
import { ConfigError } from "../src/errors.js";
import { generateIdentity } from "../src/security/keys.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "herald-config-review-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const NO_SYSTEM_FILE = path.join(tmp, "no-such-system-file.yaml");
const MACHINE = { uid: 1000, homedir: "/home/ada", hostname: "host-a" };
/** The example public key of ZeroMQ's CURVE RFC (rfc.zeromq.org/spec/26). */
const Z85_KEY = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

let fileCounter = 0;
function writeConfig(text: string, name = `herald-${fileCounter++}.yaml`): string {
  const file = path.join(tmp, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
  return file;
}

function load(opts: LoadOptions = {}) {
  return loadConfig({ env: {}, systemPath: NO_SYSTEM_FILE, machine: MACHINE, cwd: tmp, ...opts });
}

function loadText(text: string, env: NodeJS.ProcessEnv = {}) {
  return load({ configPath: writeConfig(text), env });
}

/** Run `fn`, expect a ConfigError, return its problems. */
function problemsOf(fn: () => unknown): ConfigProblem[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return ((err as ConfigError).details["problems"] ?? []) as ConfigProblem[];
  }
  throw new Error("expected a ConfigError, nothing was thrown");
}

describe("a mapping from the environment", () => {
  it("merges into the section, keeping its other defaults and file values (HERALD_OUTBOX)", () => {
    const { config, provenance } = loadText("outbox:\n  retention: 1h\n", {
      HERALD_OUTBOX: "{maxMessages: 5}",
    });
    expect(config.outbox).toMatchObject({
      maxMessages: 5,
      maxBytes: 1024 ** 3,
      retention: 3_600_000,
      dedupWindow: 600_000,
      synchronous: "full",
    });
    expect(provenance.get("outbox.maxMessages")).toEqual({ source: "env", envVar: "HERALD_OUTBOX" });
    expect(provenance.get("outbox.retention")).toMatchObject({ source: "file", line: 2 });
    expect(provenance.get("outbox.maxBytes")).toEqual({ source: "default" });
  });

  it("keeps broker.submit and the publish sockets (HERALD_BROKER='{name: x}' no longer breaks serve)", () => {
    const { config } = load({ env: { HERALD_BROKER: "{name: x, submit: {maxBatch: 10}}" } });
    expect(config.broker.name).toBe("x");
    expect(config.broker.submit).toEqual({ ipc: true, tcp: [], maxBatch: 10 });
    expect(config.broker.publish.map((p) => p.name)).toEqual(["herald", "legacy"]);
    expect(config.broker.shutdownGrace).toBe(5000);
  });

  it("merges into a list item of the same type, and replaces lists, free-form maps and other types", () => {
    const file = [
      "sinks:",
      "  - {name: hub, type: forward, endpoint: 'tcp://hub:9939', timeout: 3s}",
      "legacy:",
      "  services:",
      "    a.one: {endpoints: ['tcp://a:1']}",
      "",
    ].join("\n");
    const { config, provenance } = loadText(file, {
      HERALD_BROKER__PUBLISH__0: "{endpoint: 'tcp://0.0.0.0:9941'}",
      HERALD_SINKS__0: "{timeout: 4s}",
      HERALD_LEGACY__SERVICES: "{b.two: {endpoints: ['tcp://b:2']}}",
      HERALD_BROKER__SUBMIT__TCP: "[tcp://127.0.0.1:9939]",
    });
    expect(config.broker.publish[0]).toEqual({
      name: "herald",
      endpoint: "tcp://0.0.0.0:9941",
      format: "herald",
    });
    expect(config.sinks[0]).toMatchObject({ endpoint: "tcp://hub:9939", timeout: 4000 });
    expect(provenance.get("sinks.0.endpoint")).toMatchObject({ source: "file", line: 2 });
    expect(provenance.get("sinks.0.timeout")).toEqual({ source: "env", envVar: "HERALD_SINKS__0" });
    expect(Object.keys(config.legacy.services)).toEqual(["b.two"]);
    expect(config.broker.submit.tcp).toEqual(["tcp://127.0.0.1:9939"]);
    const other = loadText(file, { HERALD_SINKS__0: "{name: mq, type: amqp}" }).config.sinks[0];
    expect(other).toMatchObject({ name: "mq", type: "amqp", exchange: "amq.topic" });
    expect(other).not.toHaveProperty("endpoint");
  });

  it("leaves a file mistake in a merged section located in the file, not blamed on the variable", () => {
    const problems = problemsOf(() =>
      loadText("outbox:\n  maxBytes: lots\n", { HERALD_OUTBOX: "{maxMessages: 5}" }),
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ path: "outbox.maxBytes", line: 2 });
    expect(problems[0]?.envVar).toBeUndefined();
  });
});

describe("endpoints of the broker and its sinks", () => {
  it("are checked at load like the legacy ones: port range, a port at all, file:line", () => {
    const text = [
      "broker:",
      "  submit: {tcp: ['tcp://127.0.0.1']}",
      "  publish:",
      "    - {name: herald, endpoint: 'tcp://127.0.0.1:99999'}",
      "    - {name: fine, endpoint: 'tcp://*:9941'}",
      "sinks:",
      "  - {name: hub, type: forward, endpoint: 'tcp://hub.example.org'}",
      "  - {name: pub, type: zeromq, endpoint: 'tcp://0.0.0.0:0'}",
      "  - {name: local, type: forward, endpoint: 'ipc:///run/herald/other.sock'}",
      "  - {name: mq, type: amqp}",
      "",
    ].join("\n");
    const problems = problemsOf(() => loadText(text));
    expect(problems.map((p) => [p.path, p.line])).toEqual([
      ["broker.submit.tcp.0", 2],
      ["broker.publish.0.endpoint", 4],
      ["sinks.0.endpoint", 7],
      ["sinks.1.endpoint", 8],
    ]);
    expect(problems[0]?.message).toBe('"tcp://127.0.0.1": expected tcp://host:port or ipc://path');
    expect(problems[1]?.message).toContain("port 99999 is out of range 1-65535");
    expect(problems[3]?.message).toContain("port 0 is out of range");
  });

  it("name the variable when the environment set them, and accept ipc://", () => {
    const problems = problemsOf(() => load({ env: { HERALD_BROKER__SUBMIT__TCP: "[tcp://h:70000]" } }));
    expect(problems).toMatchObject([{ path: "broker.submit.tcp.0", envVar: "HERALD_BROKER__SUBMIT__TCP" }]);
    const ok = load({ env: { HERALD_BROKER__PUBLISH__0__ENDPOINT: "ipc:///tmp/pub.sock" } });
    expect(ok.config.broker.publish[0]?.endpoint).toBe("ipc:///tmp/pub.sock");
  });

  it("blame a list item the environment added past the file's items on its variable, not the file's list", () => {
    const file = "broker:\n  publish:\n    - name: herald\n      endpoint: tcp://127.0.0.1:47971\n";
    const problems = problemsOf(() =>
      loadText(file, { HERALD_BROKER__PUBLISH__1__ENDPOINT: "tcp://127.0.0.1:47972" }),
    );
    expect(problems).toMatchObject([
      { path: "broker.publish.1", envVar: "HERALD_BROKER__PUBLISH__1__ENDPOINT", message: /"name"/ },
    ]);
    expect(problems[0]?.line).toBeUndefined();
  });
});

describe("sinks[].tls", () => {
  const text = [
    "sinks:",
    "  - name: mq",
    "    type: amqp",
    "    url: amqps://herald:secret@mq.example.org/%2F",
    "    tls: {ca: certs/ca.pem, cert: null}",
    "",
  ].join("\n");

  it("takes null for ca, cert and key, as documented", () => {
    const file = writeConfig(text, "tls/herald.yaml");
    const { config } = load({ configPath: file });
    expect(config.sinks[0]).toMatchObject({
      tls: { ca: path.join(tmp, "tls", "certs", "ca.pem"), cert: null, key: null },
    });
  });

  it("round-trips: what config show prints (YAML or JSON), config check accepts", () => {
    const loaded = load({ configPath: writeConfig(text) });
    for (const format of ["yaml", "json"] as const) {
      const shown = writeConfig(renderConfig(loaded, { format }));
      const check = checkConfigFile(shown, {}, { systemPath: NO_SYSTEM_FILE, machine: MACHINE });
      expect(check.ok ? "ok" : check.error.message).toBe("ok");
      if (check.ok)
        expect(check.config.sinks).toEqual(
          loaded.config.sinks.map((s) => ({ ...s, url: expect.any(String) })),
        );
    }
  });
});

describe("checkConfigFile without a file", () => {
  const opts = { systemPath: NO_SYSTEM_FILE, machine: MACHINE, cwd: tmp };

  it("follows the lookup: no system file and HERALD_CONFIG unset or empty means defaults + environment", () => {
    for (const env of [{}, { HERALD_CONFIG: "" }]) {
      const r = checkConfigFile(undefined, env, opts);
      expect(r.ok && r.loaded.file).toBeUndefined();
      expect(r.ok).toBe(true);
    }
    const sys = writeConfig("log: {level: warn}\n");
    const viaSystem = checkConfigFile(undefined, {}, { ...opts, systemPath: sys });
    expect(viaSystem.ok && viaSystem.loaded.file).toBe(sys);
  });

  it("names where a missing path came from", () => {
    const missing = path.join(tmp, "missing.yaml");
    const positional = checkConfigFile(missing, {}, { ...opts, configPathFrom: "the command line" });
    expect(positional.ok ? "" : positional.error.message).toContain("(from the command line) does not exist");
    const env = checkConfigFile(undefined, { HERALD_CONFIG: missing }, opts);
    expect(env.ok ? "" : env.error.message).toContain("(from HERALD_CONFIG) does not exist");
  });
});

describe("durations waited with a timer", () => {
  it("are at most 2147483647ms (Node.js timers fire at once beyond), saying so", () => {
    const text = [
      "broker: {publishDelay: 25d, shutdownGrace: 30d}",
      "client: {timeout: 2147483648}",
      "sinks:",
      "  - {name: hub, type: forward, endpoint: 'tcp://hub:9939', timeout: 30d}",
      "  - {name: mq, type: amqp, heartbeat: 65536s}",
      "security: {reloadInterval: 30d}",
      "",
    ].join("\n");
    const problems = problemsOf(() => loadText(text));
    const byPath = Object.fromEntries(problems.map((p) => [p.path, p.message]));
    expect(Object.keys(byPath).sort()).toEqual([
      "broker.publishDelay",
      "broker.shutdownGrace",
      "client.timeout",
      "security.reloadInterval",
      "sinks.0.timeout",
      "sinks.1.heartbeat",
    ]);
    expect(byPath["security.reloadInterval"]).toMatch(
      /^must be at most 2147483647ms \(about 24\.8 days.*got 30d$/,
    );
    expect(byPath["broker.shutdownGrace"]).toContain("must be at most 2147481647ms");
    expect(byPath["sinks.1.heartbeat"]).toContain("must be at most 65535s");
  });

  it("accept the maximum itself; ages compared with the clock may be longer", () => {
    const text = [
      "broker: {publishDelay: 2147483647, shutdownGrace: 2147481647}",
      "security: {reloadInterval: 2147483647, clockSkew: 30d}",
      "outbox: {retention: 30d, dedupWindow: 30d}",
      "legacy: {grace: 90d, settle: 30d}",
      "",
    ].join("\n");
    const { config } = loadText(text);
    expect(config.security.reloadInterval).toBe(2147483647);
    expect(config.outbox.retention).toBe(30 * 86_400_000);
    expect(config.legacy.grace).toBe(90 * 86_400_000);
  });
});

describe("security.serverKey", () => {
  it("is a path resolved against the file's directory (env: the current directory) unless it is a Z85 key", () => {
    const file = writeConfig("security:\n  serverKey: keys/broker.pub\n", "sk/herald.yaml");
    expect(load({ configPath: file }).config.security.serverKey).toBe(
      path.join(tmp, "sk", "keys", "broker.pub"),
    );
    const key = load({ configPath: writeConfig(`security:\n  serverKey: '${Z85_KEY}'\n`) });
    expect(key.config.security.serverKey).toBe(Z85_KEY);
    const env = load({ env: { HERALD_SECURITY__SERVER_KEY: "b.pub" }, cwd: "/srv" });
    expect(env.config.security.serverKey).toBe("/srv/b.pub");
  });

  it("takes a 40-character .pub path as a path, though the Z85 alphabet has / and .", () => {
    const keys = generateIdentity("broker.host0001", path.join(tmp, "k400"));
    const file = path.join(tmp, "k400", "broker.host0001.pub");
    const relative = `${"./".repeat(8)}k400/broker.host0001.pub`;
    expect(relative).toHaveLength(40);
    const loaded = load({ configPath: writeConfig(`security:\n  serverKey: '${relative}'\n`) });
    expect(loaded.config.security.serverKey).toBe(file);
    const config = { ...loaded.config, security: { ...loaded.config.security, serverKey: file } };
    expect(configServerKey(config)).toBe(keys.curvePublic);
  });
});

describe("outbox ids and signature freshness", () => {
  it("remembers ids at least twice security.clockSkew, so a replay inside freshness meets the dedup store", () => {
    const wide = loadText("security:\n  clockSkew: 15m\noutbox:\n  dedupWindow: 10m\n").config;
    expect(outboxOptions(wide).dedupWindowMs).toBe(30 * 60_000);
    const narrow = loadText("security:\n  clockSkew: 1m\noutbox:\n  dedupWindow: 10m\n").config;
    expect(outboxOptions(narrow).dedupWindowMs).toBe(10 * 60_000);
  });
});

describe("keys checked together", () => {
  it("refuses CURVE without an identity, forwarders without CURVE, a CURVE forward without an identity", () => {
    const problems = problemsOf(() =>
      loadText(
        [
          "sinks:",
          `  - {name: hub, type: forward, endpoint: 'tcp://hub:9939', serverKey: '${Z85_KEY}'}`,
          "security:",
          "  curve: true",
          "",
        ].join("\n"),
      ),
    );
    expect(problems.map((p) => [p.path, p.line])).toEqual([
      ["sinks.0.serverKey", 2],
      ["security.curve", 4],
    ]);
    expect(problems[1]?.message).toContain("security.identity is null");
    const fw = problemsOf(() => load({ env: { HERALD_SECURITY__FORWARDERS: "[edge-1]" } }));
    expect(fw).toMatchObject([{ path: "security.forwarders", envVar: "HERALD_SECURITY__FORWARDERS" }]);
    expect(fw[0]?.message).toContain("set security.curve: true");
  });

  it("refuses an enabled shim's service without endpoints when there is no legacy.config to take them from", () => {
    const text = "legacy:\n  enabled: true\n  services:\n    bodhi.app01: {stage: legacy}\n";
    const problems = problemsOf(() => loadText(text));
    expect(problems).toMatchObject([{ path: "legacy.services.bodhi.app01", line: 4 }]);
    expect(problems[0]?.message).toContain("legacy.config is null");
    // Whether the fedmsg config lists it is for the shim to find out when it reads it.
    expect(() => loadText(`${text}  config: /nonexistent/fedmsg.d\n`)).not.toThrow();
    expect(() => loadText(text.replace("enabled: true", "enabled: false"))).not.toThrow();
  });
});

describe("a list whose items are all commented out", () => {
  it("keeps its default, as a section does", () => {
    const text = [
      "broker:",
      "  submit:",
      "    tcp:",
      "#     - tcp://0.0.0.0:9939",
      "  publish:",
      "sinks:",
      "#  - name: rabbit",
      "#    type: amqp",
      "security:",
      "  forwarders:",
      "",
    ].join("\n");
    const { config, provenance } = loadText(text);
    expect(config.broker.submit.tcp).toEqual([]);
    expect(config.broker.publish.map((p) => p.name)).toEqual(["herald", "legacy"]);
    expect(config.sinks).toEqual([]);
    expect(config.security.forwarders).toEqual([]);
    expect(provenance.get("sinks")).toEqual({ source: "default" });
  });
});
