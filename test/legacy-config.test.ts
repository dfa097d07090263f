import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { ConfigError } from "../src/errors.js";
import type { LegacyConfig, LoadLegacyOptions } from "../src/legacy/config/index.js";
import { loadLegacyConfig } from "../src/legacy/config/index.js";

const ROOT = join(import.meta.dirname, "..");
const HOST = "herald-test01.example.org";
const PYTHON = "/usr/bin/python3";
const BAD = join(ROOT, "test/fixtures/legacy-bad");

interface Expected {
  path: string;
  hostname: string;
  topicPrefix: string;
  environment: string;
  relayInbound: string;
  endpoints: Record<string, string[]>;
}

const TREES = ["fedora-prod", "small", "single-file"] as const;

function expected(tree: string): Expected {
  return JSON.parse(readFileSync(join(ROOT, "legacy-config", tree, "expected.json"), "utf8")) as Expected;
}

function treePath(tree: string): string {
  return join(ROOT, "legacy-config", tree, expected(tree).path.split("/").slice(1).join("/"));
}

/** Env pinned so os.environ lookups in the samples are deterministic. */
const OPTS: LoadLegacyOptions = { hostname: HOST, env: { FEDMSG_SSLDIR: "/etc/pki/fedmsg" } };

async function failure(p: Promise<unknown>): Promise<ConfigError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  const ce = err as ConfigError;
  expect(ce.code).toBe("LEGACY_CONFIG");
  return ce;
}

function sameShape(cfg: LegacyConfig, exp: Expected): void {
  expect(cfg.endpoints).toEqual(exp.endpoints);
  expect(cfg.relayInbound).toBe(exp.relayInbound);
  expect(cfg.topicPrefix).toBe(exp.topicPrefix);
  expect(cfg.environment).toBe(exp.environment);
}

const temps: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "herald-legacy-"));
  temps.push(d);
  return d;
}
afterAll(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe("python evaluator", () => {
  for (const tree of TREES) {
    test(`${tree} loads to its expected.json`, async () => {
      const cfg = await loadLegacyConfig(treePath(tree), { ...OPTS, python: PYTHON });
      expect(cfg.evaluator).toBe("python");
      sameShape(cfg, expected(tree));
      expect(cfg.files.length).toBeGreaterThan(0);
    });
  }

  test("fedora-prod: zmq keys, ssl policy, dropped class and relay warning", async () => {
    const cfg = await loadLegacyConfig(treePath("fedora-prod"), { ...OPTS, python: PYTHON });
    expect(cfg.zmq).toMatchObject({ zmq_linger: 1000, zmq_enabled: true, zmq_tcp_keepalive_idle: 60 });
    expect(cfg.highWaterMark).toBe(0);
    expect(cfg.certnames["bodhi.app01"]).toBe("bodhi-app01.phx2.fedoraproject.org");
    expect(cfg.routingPolicy["org.fedoraproject.prod.buildsys.build.state.change"]).toEqual([
      "buildsys-koji01.phx2.fedoraproject.org",
      "buildsys-koji02.phx2.fedoraproject.org",
    ]);
    expect(cfg.raw["ssldir"]).toBe("/etc/pki/fedmsg");
    // logging.py's filter factory is a class: not JSON, dropped and reported.
    expect(
      cfg.warnings.some((w) => w.includes("logging.py") && w.includes("logging.filters.context.()")),
    ).toBe(true);
    expect(cfg.warnings.some((w) => w.startsWith("relay_inbound lists 2 endpoints"))).toBe(true);
    expect(cfg.raw["logging"]).toMatchObject({ version: 1, handlers: { console: { level: "INFO" } } });
  });

  test("os.environ lookups see opts.env", async () => {
    const cfg = await loadLegacyConfig(treePath("fedora-prod"), {
      ...OPTS,
      python: PYTHON,
      env: { FEDMSG_SSLDIR: "/srv/certs" },
    });
    expect(cfg.raw["ssldir"]).toBe("/srv/certs");
  });

  test("single-file: active, name, nitpicky and ipc endpoint", async () => {
    const cfg = await loadLegacyConfig(treePath("single-file"), { ...OPTS, python: PYTHON });
    expect(cfg.active).toBe(false);
    expect(cfg.name).toBe("bodhi.herald-test01");
    expect(cfg.routingNitpicky).toBe(true);
    expect(cfg.endpoints["local.ipc"]).toEqual(["ipc:///var/run/fedmsg/local.sock"]);
    // A bare string endpoint becomes a one-element list, as fedmsg's iterate() does.
    expect(cfg.endpoints["fedora-infrastructure"]).toEqual(["tcp://stg.fedoraproject.org:9940"]);
  });

  test("a missing path names the path and the fix", async () => {
    const err = await failure(loadLegacyConfig(join(BAD, "does-not-exist"), { python: PYTHON }));
    expect(err.message).toContain("does-not-exist");
    expect(err.message).toMatch(/point legacy\.config at/);
  });
});

describe("restricted evaluator", () => {
  test("small and single-file yield the same endpoint map as python", async () => {
    for (const tree of ["small", "single-file"]) {
      const cfg = await loadLegacyConfig(treePath(tree), { ...OPTS, python: false });
      expect(cfg.evaluator).toBe("restricted");
      sameShape(cfg, expected(tree));
    }
  });

  test("small: the whole merged config equals python's", async () => {
    const py = await loadLegacyConfig(treePath("small"), { ...OPTS, python: PYTHON });
    const rs = await loadLegacyConfig(treePath("small"), { ...OPTS, python: false });
    expect(rs.raw).toEqual(py.raw);
  });

  test("fedora-prod fails on logging.py's class with file, line and construct", async () => {
    const err = await failure(loadLegacyConfig(treePath("fedora-prod"), { ...OPTS, python: false }));
    expect(err.details).toMatchObject({ kind: "unsupported", construct: "class definitions", line: 11 });
    expect(String(err.details["file"])).toMatch(/fedmsg\.d\/logging\.py$/);
    expect(err.message).toContain(
      "logging.py:11: class definitions are not supported by the restricted evaluator",
    );
    expect(err.message).toContain("install python3 or move the logging config out of fedmsg.d");
  });

  test("fedora-prod without logging.py: same endpoints and same raw config as python", async () => {
    const dir = tempDir();
    cpSync(treePath("fedora-prod"), dir, { recursive: true });
    rmSync(join(dir, "logging.py"));
    const py = await loadLegacyConfig(dir, { ...OPTS, python: PYTHON });
    const rs = await loadLegacyConfig(dir, { ...OPTS, python: false });
    sameShape(rs, expected("fedora-prod"));
    expect(rs.raw).toEqual(py.raw);
    expect(rs.warnings).toEqual(py.warnings);
  });
});

describe("bad fixtures give clear errors and never hang", () => {
  test("infinite loop -> timeout naming the file (python)", async () => {
    const err = await failure(loadLegacyConfig(join(BAD, "loop"), { python: PYTHON, timeoutMs: 1000 }));
    expect(err.details).toMatchObject({ kind: "timeout" });
    expect(err.message).toContain("loop/endpoints.py");
    expect(err.message).toMatch(
      /loops forever or blocks .*fix it\. Library callers set the limit with loadLegacyConfig's timeoutMs/,
    );
  });

  test("a loop that swallows the timer is killed, still naming the file", async () => {
    const err = await failure(loadLegacyConfig(join(BAD, "stubborn"), { python: PYTHON, timeoutMs: 500 }));
    expect(err.details).toMatchObject({ kind: "timeout" });
    expect(err.message).toContain("stubborn/endpoints.py");
    expect(err.message).toContain("killed");
  });

  test("infinite loop -> timeout naming the file (restricted refuses while)", async () => {
    const err = await failure(loadLegacyConfig(join(BAD, "loop"), { python: false }));
    expect(err.details).toMatchObject({ kind: "unsupported", construct: "while loops", line: 3 });
    expect(err.message).toContain("loop/endpoints.py:3");
  });

  test("memory hog -> memory error naming the file", async () => {
    const err = await failure(
      loadLegacyConfig(join(BAD, "memory"), { python: PYTHON, memoryBytes: 256 * 1024 * 1024 }),
    );
    expect(err.details).toMatchObject({ kind: "memory" });
    expect(err.message).toContain("memory/endpoints.py");
    expect(err.message).toMatch(/out of memory \(limit 256 MiB\)/);
  });

  test("syntax error -> file and line (both evaluators)", async () => {
    const py = await failure(loadLegacyConfig(join(BAD, "syntax"), { python: PYTHON }));
    expect(py.details).toMatchObject({ kind: "syntax", line: 6 });
    expect(py.message).toContain("10-broken.py:6: python syntax error");
    const rs = await failure(loadLegacyConfig(join(BAD, "syntax"), { python: false }));
    expect(rs.details).toMatchObject({ kind: "syntax" });
    expect(String(rs.details["file"])).toMatch(/10-broken\.py$/);
    expect(rs.details["line"]).toBeGreaterThanOrEqual(5);
  });

  test("an exception -> its type, file and line (both evaluators)", async () => {
    for (const python of [PYTHON, false] as const) {
      const err = await failure(loadLegacyConfig(join(BAD, "raise"), { python }));
      expect(err.details).toMatchObject({ kind: "exception", line: 6 });
      expect(err.message).toContain("raise/endpoints.py:6: the file raised KeyError");
      expect(err.message).toContain("HERALD_TEST_SURELY_UNSET_VARIABLE");
    }
  });

  test("config that is not a dict is refused (both evaluators)", async () => {
    for (const python of [PYTHON, false] as const) {
      const err = await failure(loadLegacyConfig(join(BAD, "not-a-dict"), { python }));
      expect(err.message).toContain("`config` is a list, not a dict");
    }
  });

  test("an explicit python that does not exist is an error, not a silent fallback", async () => {
    const err = await failure(loadLegacyConfig(treePath("small"), { python: "/nonexistent/python3" }));
    expect(err.message).toContain("/nonexistent/python3");
    expect(err.message).toContain("python: false");
  });
});

describe("normalization", () => {
  async function loadOne(source: string, python: string | false): Promise<LegacyConfig> {
    const dir = tempDir();
    writeFileSync(join(dir, "a.py"), source);
    return loadLegacyConfig(dir, { python, hostname: HOST });
  }

  test("invalid endpoints are refused naming the file and service", async () => {
    for (const python of [PYTHON, false] as const) {
      const err = await failure(loadOne(`config = {"endpoints": {"x.y": ["http://nope:80"]}}\n`, python));
      expect(err.message).toMatch(
        /a\.py: endpoint "http:\/\/nope:80" of service x\.y: expected tcp:\/\/host:port/,
      );
    }
  });

  test("duplicate endpoints across services warn", async () => {
    const cfg = await loadOne(
      `config = {"endpoints": {"a.h": ["tcp://h:3000"], "b.h": ["tcp://h:3000", "tcp://*:3001"]}}\n`,
      false,
    );
    expect(cfg.warnings).toContain("endpoint tcp://h:3000 is listed for both a.h and b.h");
    expect(cfg.endpoints["b.h"]).toEqual(["tcp://h:3000", "tcp://*:3001"]);
  });

  test("defaults: fedmsg's topic prefix and environment", async () => {
    const cfg = await loadOne(`config = {"endpoints": {}}\n`, false);
    expect(cfg.topicPrefix).toBe("org.fedoraproject");
    expect(cfg.environment).toBe("dev");
    expect(cfg.relayInbound).toBeUndefined();
  });

  test("python evaluator has no network but gethostname() works", async () => {
    const err = await failure(
      loadOne(
        `import socket\nh = socket.gethostname()\nsocket.create_connection(("127.0.0.1", 9))\nconfig = {}\n`,
        PYTHON,
      ),
    );
    expect(err.message).toMatch(/a\.py:3: the file raised OSError: network access is disabled/);
    const dns = await failure(loadOne(`import socket\nsocket.getaddrinfo("example.org", 80)\n`, PYTHON));
    expect(dns.message).toContain("network access is disabled");
    const cfg = await loadOne(
      `import socket\nconfig = {"h": socket.gethostname(), "f": socket.getfqdn()}\n`,
      PYTHON,
    );
    expect(cfg.raw).toEqual({ h: HOST, f: HOST });
  });

  test("wrong types name the key and the file", async () => {
    const err = await failure(loadOne(`config = {"topic_prefix": 42}\n`, false));
    expect(err.message).toMatch(/a\.py: `topic_prefix` must be a string, got int/);
  });
});
