import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, test } from "vitest";
import { ConfigError } from "../src/errors.js";
import { evaluateSource, loadLegacyConfig, recursiveUpdate } from "../src/legacy/config/index.js";

const ROOT = join(import.meta.dirname, "..");
const PYTHON = "/usr/bin/python3";
const HOST = "app07.phx2.example.org";
const ENV = { HERALD_T_PORT: "4100", HERALD_T_NAME: "busy" };
const base = mkdtempSync(join(tmpdir(), "herald-restricted-"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

let counter = 0;
function dirWith(files: Record<string, string>): string {
  const dir = join(base, String(counter++));
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** Load with both evaluators and return both raw configs. */
async function both(files: Record<string, string>): Promise<[unknown, unknown]> {
  const dir = dirWith(files);
  const opts = { hostname: HOST, env: ENV };
  const py = await loadLegacyConfig(dir, { ...opts, python: PYTHON });
  const rs = await loadLegacyConfig(dir, { ...opts, python: false });
  return [py.raw, rs.raw];
}

/** Snippets real fedmsg.d files use; each must evaluate identically in python and the restricted evaluator. */
const SNIPPETS: Record<string, string> = {
  percent: `config = {"a": ["tcp://h:30%02i" % i for i in range(3)], "b": "%s-%d-%r" % ("x", 7, "q"),
  "c": "%(host)s:%(port)05d" % {"host": "h", "port": 42}, "d": "%0.2i|%-4s|%+d|%x|%o|%5.1f|%e|%g|%%" % (3, "ab", 5, 255, 8, 3.14159, 12345.678, 0.00001234)}`,
  format: `config = {"a": "{}:{}".format("h", 1), "b": "{0}{1}{0}".format("x", "y"), "c": "{host}:{port:04d}".format(host="h", port=9),
  "d": "{:>6}|{:<4}|{:^7}|{:,}|{:.3f}|{!r}|{:x}".format("r", "l", "mid", 1234567, 2.5, "s", 255), "e": "{0[k]}".format({"k": "v"})}`,
  comprehensions: `hosts = ["app0%i" % i for i in range(1, 4)]
config = dict(endpoints=dict([("bodhi.%s" % h, ["tcp://%s:%d" % (h, 3000 + i) for i in range(2) if i % 2 == 0]) for h in hosts] + [("x.y", ["tcp://x:1"])]),
  sets=sorted({h[-1] for h in hosts}), d={k: v for k, v in zip("abc", range(3))}, nested=[(a, b) for a in range(2) for b in range(a)])`,
  loops: `config = {"endpoints": {}}
for host, n in [("a", 2), ("b", 1)]:
    if n > 1:
        config["endpoints"]["s.%s" % host] = ["tcp://%s:%d" % (host, 3000 + i) for i in range(n)]
    elif n == 1:
        config["endpoints"]["s.%s" % host] = ["tcp://%s:4000" % host]
    else:
        pass
config["endpoints"].update({"t.c": ["tcp://c:1"]}, extra=["tcp://e:2"])
total = 0
for i in range(10):
    if i == 7:
        break
    if i % 2:
        continue
    total += i
config["total"] = total`,
  imports: `import socket, os
from os import environ
from os.path import join as pjoin
try:
    import herald_surely_missing_module
    x = 1
except ImportError:
    x = 2
try:
    from also_missing import thing
except (ImportError, KeyError) as e:
    y = "fallback"
else:
    y = "else"
finally:
    z = "finally"
hostname = socket.gethostname().split(".")[0]
config = dict(x=x, y=y, z=z, host=hostname, fqdn=socket.getfqdn(), port=int(os.environ.get("HERALD_T_PORT", "1")),
  name=os.getenv("HERALD_T_NAME"), missing=os.environ.get("HERALD_T_NOPE"), has="HERALD_T_PORT" in environ,
  path=pjoin("/etc", "pki", "fedmsg"), short=os.path.basename("/a/b.crt"))`,
  strings: `s = "  Mixed Case  "
config = {"a": s.strip().lower(), "b": "a,b,,c".split(","), "c": "a b  c".split(), "d": "x.y.z".rsplit(".", 1),
  "e": "-".join(["a", "b"]), "f": "aXbX".replace("X", "."), "g": "abc"[1:], "h": "abcdef"[::2], "i": "abc"[-1],
  "j": "con" "cat" 'enated', "k": r"raw\\n", "l": """tri
ple""", "m": "x" * 3, "n": "ab".startswith(("a", "z")), "o": "7".zfill(3), "p": str(1.0) + str(10**20) + str(1e-5) + str(2.5e16),
  "q": len("héllo"), "r": "\\u00e9\\x41\\t|", "s": repr(None) + repr(True) + repr([1, "a", (2,)])}`,
  numbers: `config = {"a": 7 // 2, "b": -7 // 2, "c": -7 % 3, "d": 7 / 2, "e": 2 ** 10, "f": 0x1F + 0o17 + 0b11, "g": 1_000,
  "h": 1.5 * 2, "i": True + 1, "j": int("42") + int(3.9), "k": float("2.5"), "l": abs(-3), "m": max(1, 5, 3), "n": min([4, 2]),
  "o": sum(range(5)), "p": 10 ** 2 * 1.0, "q": -2 ** 2, "r": not 0, "s": 1 < 2 < 3, "t": 3 if 0 else 4, "u": [] or "x", "v": 1 and 0}`,
  containers: `a = [1, 2]
b = a
b += [3]
t = (1,) + (2, 3)
d = {"x": 1}
d.setdefault("y", [])
d["y"].append(2)
d2 = dict(d, z=3)
del d2["x"]
first, *rest = [1, 2, 3]
config = {"a": a, "t": t, "d": d, "d2": d2, "rest": rest, "first": first, "keys": sorted(d.keys()),
  "items": [list(p) for p in d.items()], "in": 2 in a and "x" in d, "get": d.get("nope", "dflt"), "copy": list(a) == a,
  "rev": sorted([3, 1, 2], reverse=True), "enum": list(enumerate("ab", 1)), "tuple_key": {(1, 2): "t"}, "int_key": {1: "one", True: "tru"},
  "setconv": {3, 1, 2}, "none_get": {"n": None}.get("n", "dflt")}`,
  dictcall: `config = dict(
    # comments inside the call
    endpoints=dict(
        relay_outbound=["tcp://*:4001"],
        **{"dotted.key": ["tcp://h:1"]}
    ),
    **dict([("fedmsg.consumers.gateway.port", 9940)])
)
config.update(extra=True)`,
  continuation: `x = 1 + \\
    2
config = {"x": x, "y": (1 +
  2), "z": [
  1,
  2,  # trailing comment
]}`,
};

describe("restricted evaluator matches python on the fedmsg subset", () => {
  for (const [name, source] of Object.entries(SNIPPETS)) {
    test(name, async () => {
      const [py, rs] = await both({ "a.py": `${source}\n` });
      expect(rs).toEqual(py);
    });
  }
});

describe("merge semantics (both evaluators)", () => {
  const files = {
    "10-base.py": `config = dict(endpoints={"a.h": ["tcp://h:1"], "b.h": ["tcp://h:2"]}, logging={"version": 1, "handlers": {"c": {"level": "INFO"}}}, lst=[1, 2], top="first")\n`,
    "20-over.py": `config = dict(endpoints={"b.h": ["tcp://h:3"], "c.h": ["tcp://h:4"]}, logging={"handlers": {"c": {"level": "DEBUG"}, "d": {}}}, lst=[9])\n`,
    "30-noconfig.py": `something_else = 1\n`,
    "9-last.py": `config = {"top": "lexically last wins"}\n`,
    "README.txt": `config = {"ignored": True}\n`,
  };
  const want = {
    endpoints: { "a.h": ["tcp://h:1"], "b.h": ["tcp://h:3"], "c.h": ["tcp://h:4"] },
    logging: { version: 1, handlers: { c: { level: "DEBUG" }, d: {} } },
    lst: [9],
    top: "lexically last wins",
  };

  test("later files override, nested dicts merge, lists are replaced, non-.py ignored", async () => {
    const [py, rs] = await both(files);
    expect(py).toEqual(want);
    expect(rs).toEqual(want);
  });

  test("files without config contribute nothing and are reported", async () => {
    const dir = dirWith(files);
    for (const python of [PYTHON, false] as const) {
      const cfg = await loadLegacyConfig(dir, { python, hostname: HOST });
      expect(cfg.files.map((f) => f.split("/").pop())).toEqual([
        "10-base.py",
        "20-over.py",
        "30-noconfig.py",
        "9-last.py",
      ]);
      expect(cfg.warnings.some((w) => w.includes("30-noconfig.py defines no `config`"))).toBe(true);
    }
  });

  test("recursiveUpdate keeps __proto__ a plain key", () => {
    const merged = recursiveUpdate(
      { a: { b: 1 } },
      JSON.parse('{"__proto__": {"polluted": true}, "a": {"c": 2}}'),
    );
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined();
    expect(Object.keys(merged)).toEqual(["a", "__proto__"]);
    expect(merged["a"]).toEqual({ b: 1, c: 2 });
  });
});

describe("restricted evaluator refuses what it does not understand", () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      "def f():\n    return 1\nconfig = {}\n",
      "function definitions (def)",
      /:1: function definitions \(def\) are not supported/,
    ],
    ["config = {'a': (lambda: 1)}\n", "lambda expressions", /:1: lambda expressions are not supported/],
    ["x = 2\nconfig = {'a': f'{x}'}\n", "f-strings", /:2: f-strings are not supported/],
    ["with open('x') as f:\n    pass\n", "with statements", /:1: with statements are not supported/],
    [
      "config = dict(a=list(map(str, [1])))\n",
      "the builtin map()",
      /:1: the builtin map\(\) is not supported/,
    ],
    [
      "import logging\nconfig = {'a': logging.INFO}\n",
      "the module logging",
      /:2: the module logging is not supported/,
    ],
    ["import os\nconfig = {'pid': os.getpid()}\n", "os.getpid", /:2: os\.getpid is not supported/],
  ];
  for (const [source, construct, message] of cases) {
    test(construct, () => {
      let err: unknown;
      try {
        evaluateSource(source, "/etc/fedmsg.d/x.py", { hostname: HOST, env: {} });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).details).toMatchObject({ kind: "unsupported", construct });
      expect((err as ConfigError).message).toMatch(message);
      expect((err as ConfigError).message).toContain("install python3");
    });
  }

  test("step and size limits stop runaway loops and giant values", () => {
    const big = () =>
      evaluateSource("config = {'a': 'x' * (10 ** 9)}\n", "f.py", { hostname: HOST, env: {} });
    expect(big).toThrow(/f\.py:1: a value of 1000000000 items/);
    const slow = () =>
      evaluateSource(
        "t = 0\nfor i in range(1000000):\n    for j in range(1000000):\n        t += 1\n",
        "g.py",
        {
          hostname: HOST,
          env: {},
          timeoutMs: 200,
        },
      );
    expect(slow).toThrow(/g\.py:4: evaluation took too long/);
  });
});

/** Every sample file of the repository, as mutation seeds. */
function sampleSources(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith(".py")) out.push(readFileSync(join(dir, e.name), "utf8"));
    }
  };
  walk(join(ROOT, "legacy-config"));
  walk(join(ROOT, "test/fixtures/legacy-bad"));
  return out;
}

/** Evaluate and accept only success or a (non-internal) ConfigError. */
function onlyConfigErrors(source: string): void {
  try {
    evaluateSource(source, "fuzz.py", { hostname: HOST, env: ENV, timeoutMs: 100 });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    if (e.details["internal"] === true) throw e;
    expect(e.code).toBe("LEGACY_CONFIG");
    expect(e.message).toMatch(/^fuzz\.py:\d+: /);
  }
}

const TOKENS = [
  "config",
  "=",
  "dict",
  "(",
  ")",
  "[",
  "]",
  "{",
  "}",
  ",",
  ":",
  ".",
  "%",
  "+",
  "*",
  "**",
  "-",
  "/",
  "//",
  "for",
  "in",
  "if",
  "else",
  "elif",
  "try",
  "except",
  "ImportError",
  "import",
  "from",
  "socket",
  "os",
  "environ",
  "get",
  "format",
  "range",
  "\n",
  "\n    ",
  "\n        ",
  "'tcp://h:30%02i'",
  '"{}"',
  "'a'",
  "1",
  "0",
  "2.5",
  "x",
  "i",
  "True",
  "None",
  "not",
  "and",
  "or",
  "lambda",
  "class",
  "def",
  "\\\n",
  "#c",
  "'''",
  "r'",
  "b'x'",
  "*",
  ";",
  "pass",
  "break",
  "del",
  "is",
  "==",
  "+=",
];

describe("fuzz: the restricted evaluator only ever throws ConfigError", () => {
  test("random strings", () => {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 200 }), onlyConfigErrors), {
      numRuns: 1500,
    });
  });

  test("token soup", () => {
    const soup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 60 }).map((ts) => ts.join(" "));
    fc.assert(fc.property(soup, onlyConfigErrors), { numRuns: 1500 });
  });

  test("mutations of the sample files", () => {
    const seeds = sampleSources();
    const mutation = fc.record({
      seed: fc.integer({ min: 0, max: seeds.length - 1 }),
      edits: fc.array(
        fc.record({
          at: fc.nat(),
          len: fc.nat({ max: 12 }),
          insert: fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom(...TOKENS)),
        }),
        { minLength: 1, maxLength: 4 },
      ),
    });
    fc.assert(
      fc.property(mutation, ({ seed, edits }) => {
        let src = seeds[seed]!;
        for (const { at, len, insert } of edits) {
          const p = at % (src.length + 1);
          src = src.slice(0, p) + insert + src.slice(p + len);
        }
        onlyConfigErrors(src);
      }),
      { numRuns: 1500 },
    );
  });
});
