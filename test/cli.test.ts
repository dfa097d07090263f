import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, freePorts, noBrokerHome, type ServeProcess, serveEnv, startServe } from "./helpers/serve.js";

function herald(args: string[], env: NodeJS.ProcessEnv, input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, input, encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("herald CLI against a running broker", () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let serve: ServeProcess;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "herald-cli-"));
    const [hp, lp] = await freePorts(2);
    env = serveEnv(dir, { herald: hp!, legacy: lp! });
    serve = await startServe(env);
  });
  afterAll(async () => {
    serve.child.kill("SIGTERM");
    await serve.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it("publish prints an acknowledgement and tail sees it", async () => {
    const { spawn } = await import("node:child_process");
    const tail = spawn(process.execPath, [CLI, "tail", "cli.#", "--count", "1"], { env });
    let out = "";
    tail.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const ended = new Promise<number | null>((r) => tail.on("close", r));
    // tail connects asynchronously: publish until it has printed a line.
    let published = "";
    for (let i = 0; i < 100 && out === ""; i++) {
      const r = herald(["publish", "cli.test", `{"n": ${i}}`], env);
      expect(r.code, r.stderr).toBe(0);
      published = r.stdout;
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(await ended).toBe(0);
    expect(published).toMatch(/^ok [0-9a-f-]{36} seq=\d+/);
    expect(out).toMatch(/cli\.test [0-9a-f-]{36} \[herald\] \{"n":\d+\}/);
  });

  it("tail --json prints envelopes: herald's from the herald socket, fedmsg's with --format legacy", async () => {
    const { spawn } = await import("node:child_process");
    const run = (args: string[]) => {
      const p = spawn(process.execPath, [CLI, "tail", "json.#", "--count", "1", "--json", ...args], { env });
      const r = { out: "", ended: new Promise<number | null>((res) => p.on("close", res)) };
      p.stdout.on("data", (d: Buffer) => {
        r.out += d.toString();
      });
      return r;
    };
    const herald_ = run([]);
    const legacy = run(["--format", "legacy"]);
    for (let i = 0; i < 100 && (herald_.out === "" || legacy.out === ""); i++) {
      expect(herald(["publish", "json.test", `{"n": ${i}}`], env).code).toBe(0);
      await new Promise((res) => setTimeout(res, 100));
    }
    expect(await herald_.ended).toBe(0);
    expect(await legacy.ended).toBe(0);
    expect(JSON.parse(herald_.out)).toMatchObject({ v: 1, topic: "json.test", schema: "base.message" });
    const fedmsg = JSON.parse(legacy.out) as Record<string, unknown>;
    expect(Object.keys(fedmsg).sort()).toEqual(["i", "msg", "msg_id", "timestamp", "topic", "username"]);
    expect(fedmsg["msg_id"]).toMatch(/^\d{4}-[0-9a-f-]{36}$/);
  });

  it("publish reads JSON lines from stdin and reports refusals with exit 1", () => {
    const ok = herald(["publish", "cli.lines", "-", "--json"], env, '{"a":1}\n{"a":2}\n\n{"a":3}\n');
    expect(ok.code).toBe(0);
    const acks = ok.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { id: string; seq: number });
    expect(acks).toHaveLength(3);
    // A refused line is named, and the others are still published.
    const big = JSON.stringify({ s: "x".repeat(1_100_000) });
    const mixed = herald(["publish", "cli.lines", "-", "--json"], env, `{"a":1}\n${big}\n{"a":3}\n`);
    expect(mixed.code).toBe(1);
    expect(mixed.stderr).toMatch(/^refused: stdin line 2: TOO_LARGE: /m);
    expect(mixed.stdout.trim().split("\n")).toHaveLength(2);
    const bad = herald(["publish", "cli.*", "{}"], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/BAD_TOPIC/);
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace for a user mistake
    const notJson = herald(["publish", "cli.x", "{nope"], env);
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toMatch(/not valid JSON/);
  });

  it("status shows the outbox and each sink", () => {
    const r = herald(["status"], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/outbox: head seq \d+/);
    expect(r.stdout).toMatch(/^herald\s+zeromq\s+up/m);
    expect(r.stdout).toMatch(/^legacy\s+zeromq\s+up/m);
    const j = herald(["status", "--json"], env);
    expect(JSON.parse(j.stdout)).toMatchObject({
      accepting: true,
      sinks: [{ name: "herald" }, { name: "legacy" }],
    });
  });
});

describe("herald CLI after the broker stopped", () => {
  it("finds no socket file left behind, so publish says NO_BROKER at once instead of timing out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-cli-stop-"));
    try {
      const [hp, lp] = await freePorts(2);
      const env = serveEnv(dir, { herald: hp!, legacy: lp! });
      const serve = await startServe(env);
      const sock = serve.submit.slice("ipc://".length);
      expect(existsSync(sock)).toBe(true);
      serve.child.kill("SIGTERM");
      expect(await serve.exited).toBe(0);
      expect(existsSync(sock)).toBe(false);
      // With the file left behind, the client connected to nobody and ended in TIMEOUT after its retries.
      const r = herald(["publish", "a.b", "{}"], env);
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(`herald: NO_BROKER: no broker at ${serve.submit}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("herald serve that cannot start", () => {
  it("exits with the reason when a submit endpoint is taken, leaving no IPC socket behind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-cli-busy-"));
    const taken = createServer();
    try {
      const [hp, lp, busy] = await freePorts(3);
      await new Promise<void>((r) => taken.listen(busy, "127.0.0.1", r));
      const env = serveEnv(
        dir,
        { herald: hp!, legacy: lp! },
        {
          HERALD_BROKER__SUBMIT__TCP: `["tcp://127.0.0.1:${busy}"]`,
          HERALD_LOG_LEVEL: "error",
        },
      );
      // The IPC socket binds first, the outbox and sinks open, then the TCP endpoint fails.
      const r = spawnSync(process.execPath, [CLI, "serve"], { env, encoding: "utf8", timeout: 20_000 });
      expect(r.signal).toBeNull(); // not killed by the timeout: it exited
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain(`cannot listen on tcp://127.0.0.1:${busy}`);
      expect(existsSync(join(dir, "run", "submit.sock"))).toBe(false);
    } finally {
      taken.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a second herald serve on the same runtime directory", () => {
  it("refuses to take the running broker's IPC socket, which keeps answering", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-cli-two-"));
    try {
      const [hp, lp, hp2, lp2] = await freePorts(4);
      const env = serveEnv(dir, { herald: hp!, legacy: lp! });
      const first = await startServe(env);
      try {
        const env2 = serveEnv(
          dir,
          { herald: hp2!, legacy: lp2! },
          { HERALD_PATHS__DATA_DIR: join(dir, "data2") },
        );
        const r = spawnSync(process.execPath, [CLI, "serve"], {
          env: env2,
          encoding: "utf8",
          timeout: 20_000,
        });
        expect(r.status).not.toBe(0);
        expect(r.signal).toBeNull();
        expect(r.stderr).toContain("another herald serve is listening there");
        const status = herald(["status", "--json"], env);
        expect(status.code).toBe(0);
        expect(JSON.parse(status.stdout)).toMatchObject({ pid: first.child.pid });
      } finally {
        first.child.kill("SIGTERM");
        await first.exited;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("herald CLI without a broker", () => {
  const { dir, env } = noBrokerHome("herald-cli-nb-");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("names a bad endpoint or an unusable file in one line, without a stack trace", () => {
    const noStack = (stderr: string) => expect(stderr).not.toMatch(/internal error|\n\s+at /);
    const endpoint = herald(["publish", "a.b", "{}", "--endpoint", "garbage"], env);
    expect(endpoint.code).toBe(1);
    expect(endpoint.stderr).toMatch(
      /^refused: TRANSPORT: cannot connect to 'garbage': .*write tcp:\/\/host:port/,
    );
    noStack(endpoint.stderr);
    const missing = join(dir, "no", "such", "dir", "x.jsonl");
    for (const args of [
      ["record", missing],
      ["replay", missing],
    ]) {
      const r = herald(args, env);
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr, args[0]).toContain(`cannot open ${missing}: no such file or directory (ENOENT)`);
      noStack(r.stderr);
    }
    const count = herald(["record", join(dir, "x.jsonl"), "--count", "abc"], env);
    expect(count.code).toBe(2);
    expect(count.stderr).toContain("--count takes a positive number");
  });

  it("says there is no broker and how to start one (exit 4)", () => {
    const r = herald(["publish", "a.b", "{}"], env);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no broker at ipc:\/\/.*submit\.sock: start `herald serve`/);
    expect(herald(["status"], env).code).toBe(4);
  });

  it("has --help everywhere and documented usage errors (exit 2)", () => {
    for (const cmd of [
      "serve",
      "publish",
      "tail",
      "status",
      "trace",
      "config",
      "legacy",
      "demo",
      "shim",
      "cutover",
      "keys",
      "record",
      "replay",
    ]) {
      const r = herald([cmd, "--help"], env);
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(/usage: herald/);
    }
    expect(herald([], env).code).toBe(2);
    expect(herald(["frobnicate"], env).code).toBe(2);
    expect(herald(["publish", "--nope"], env).code).toBe(2);
  });

  it("config show gives provenance; config check names file, line and a suggestion (exit 3)", () => {
    const file = join(dir, "herald.yaml");
    writeFileSync(file, "outbox:\n  maxMesages: 10\nlimits:\n  maxBodyBytes: lots\n");
    const check = herald(["config", "check", file], env);
    expect(check.code).toBe(3);
    expect(check.stderr).toMatch(/herald\.yaml:2/);
    expect(check.stderr).toMatch(/maxMessages/);
    expect(check.stderr).toMatch(/limits\.maxBodyBytes/);
    const serve = herald(["serve", "--config", file], env);
    expect(serve.code).toBe(3);
    writeFileSync(file, "outbox:\n  maxMessages: 10\n");
    expect(herald(["config", "check", file], env).code).toBe(0);
    const show = herald(["config", "show", "--config", file], {
      ...env,
      HERALD_LIMITS__MAX_BODY_BYTES: "2MiB",
    });
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/maxMessages: 10 +# herald\.yaml:2/);
    expect(show.stdout).toMatch(/maxBodyBytes: 2MiB +# env HERALD_LIMITS__MAX_BODY_BYTES/);
    expect(show.stdout).toMatch(/maxBatch: 1000 +# default/);
  });

  it("legacy show and import read a fedmsg.d tree", () => {
    const show = herald(
      ["legacy", "show", join(import.meta.dirname, "..", "legacy-config", "small", "fedmsg.d")],
      env,
    );
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/47\d\d\d/);
    const imp = herald(
      ["legacy", "import", join(import.meta.dirname, "..", "legacy-config", "small", "fedmsg.d")],
      env,
    );
    expect(imp.code).toBe(0);
    expect(imp.stdout).toMatch(/^legacy:/m);
  });

  it("legacy import -o: a file that resolves the fedmsg path from anywhere; an existing one only with --force", () => {
    const tree = join(dir, "site");
    mkdirSync(join(tree, "etc"), { recursive: true });
    cpSync(join(import.meta.dirname, "..", "legacy-config", "small", "fedmsg.d"), join(tree, "fedmsg.d"), {
      recursive: true,
    });
    const opts = { ...env, HERALD_CONFIG: "" };
    const cwd = (args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, ...args], { env: opts, cwd: tree, encoding: "utf8" });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    // Typed relative to the current directory, written into another one: the path must still point at it.
    const imp = cwd(["legacy", "import", "fedmsg.d", "-o", "etc/herald.yaml"]);
    expect(imp.code, imp.stderr).toBe(0);
    expect(readFileSync(join(tree, "etc", "herald.yaml"), "utf8")).toContain(
      `config: ${join(tree, "fedmsg.d")}`,
    );

    // A live herald file is not replaced by a legacy:-only one unless asked.
    writeFileSync(join(tree, "live.yaml"), "broker:\n  name: keep-me\n");
    const refused = cwd(["legacy", "import", "fedmsg.d", "-o", "live.yaml"]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/live\.yaml exists: .*--force/);
    expect(readFileSync(join(tree, "live.yaml"), "utf8")).toContain("keep-me");
    const forced = cwd(["legacy", "import", "fedmsg.d", "-o", "live.yaml", "--force"]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(readFileSync(join(tree, "live.yaml"), "utf8")).toMatch(/^legacy:/m);
  });
});
