import { spawn, spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { freePorts, PY, ROOT, runJsonLines } from "./helpers/serve.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

describe("the Python examples users copy", () => {
  it("herald_publish.py publishes with an acknowledgement; a refused message is a clear error", async () => {
    tb = await startTestBroker();
    const [ack] = await runJsonLines(PY, [
      join(ROOT, "scripts", "herald_publish.py"),
      "--endpoint",
      tb.submit,
      "py.example",
      '{"k": 1}',
    ]);
    expect(ack).toMatchObject({ ok: true, duplicate: false });
    const refused = await runJsonLines(PY, [
      join(ROOT, "scripts", "herald_publish.py"),
      "--endpoint",
      tb.submit,
      "py.*",
      "{}",
    ]).catch((e: Error) => e.message);
    expect(String(refused)).toMatch(/BAD_TOPIC/);
    // Python's json reads NaN; the script must refuse it itself (the broker refused the whole request).
    const nan = await runJsonLines(PY, [
      join(ROOT, "scripts", "herald_publish.py"),
      "--endpoint",
      tb.submit,
      "py.example",
      '{"k": NaN}',
    ]).catch((e: Error) => e.message);
    expect(String(nan)).toMatch(/INVALID: .*NaN and Infinity are not JSON/);
  });

  it("herald_publish.py started while the broker restarts reaches it once it is back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-pylate-"));
    try {
      const endpoint = `ipc://${join(dir, "submit.sock")}`;
      const out = runJsonLines(PY, [
        join(ROOT, "scripts", "herald_publish.py"),
        "--endpoint",
        endpoint,
        "py.late",
        "{}",
      ]);
      await new Promise((r) => setTimeout(r, 700)); // no socket yet: the script is in its tries
      tb = await startTestBroker({ submitEndpoints: [endpoint] });
      const [ack] = await out;
      expect(ack).toMatchObject({ ok: true, duplicate: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("herald_publish.py says permission denied at once instead of a TIMEOUT blaming the broker", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-pyperm-"));
    try {
      const run = (endpoint: string, asNobody = false) => {
        const args = [join(ROOT, "scripts", "herald_publish.py"), "--endpoint", endpoint, "py.example", "{}"];
        const cmd = asNobody ? ["runuser", "-u", "nobody", "--", PY, ...args] : [PY, ...args];
        return spawnSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", timeout: 20_000 });
      };
      if (process.getuid?.() !== 0) return; // the permission case needs another user
      const closed = join(dir, "closed");
      mkdirSync(closed, { mode: 0o700 });
      writeFileSync(join(closed, "submit.sock"), "");
      chmodSync(dir, 0o755);
      const denied = run(`ipc://${join(closed, "submit.sock")}`, true);
      expect(denied.status).toBe(1);
      expect(denied.stderr).toMatch(
        /SECURITY: .*permission denied on the directory .*closed: uid \d+ may not enter it/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("herald_publish.py without --endpoint finds the broker through herald's YAML lookup and variables", async () => {
    const [port] = await freePorts(1);
    const dir = mkdtempSync(join(tmpdir(), "herald-pycfg-"));
    const script = join(ROOT, "scripts", "herald_publish.py");
    // No XDG_RUNTIME_DIR or HERALD_* from the test's own environment.
    const env = (extra: Record<string, string>): NodeJS.ProcessEnv => ({
      PATH: process.env.PATH,
      HOME: dir,
      ...extra,
    });
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    try {
      // A relative paths.runtimeDir is relative to the file's directory, as for herald.
      tb = await startTestBroker({ submitEndpoints: [`ipc://${join(dir, "run", "submit.sock")}`] });
      const rel = file("relative.yaml", "paths:\n  runtimeDir: run\n");
      const [viaEnv] = await runJsonLines(PY, [script, "py.cfg", "{}"], env({ HERALD_CONFIG: rel }));
      expect(viaEnv).toMatchObject({ ok: true, duplicate: false });
      const [viaFlag] = await runJsonLines(PY, [script, "--config", rel, "py.cfg", "{}"], env({}));
      expect(viaFlag).toMatchObject({ ok: true, duplicate: false });
      // The variable wins over the file, as in herald.
      const wrong = file("wrong.yaml", "paths:\n  runtimeDir: /nonexistent/herald\n");
      const [varWins] = await runJsonLines(
        PY,
        [script, "py.cfg", "{}"],
        env({ HERALD_CONFIG: wrong, HERALD_PATHS__RUNTIME_DIR: join(dir, "run") }),
      );
      expect(varWins).toMatchObject({ ok: true });
      await tb.stop();
      // IPC off: the first TCP endpoint, 0.0.0.0 connected as 127.0.0.1.
      tb = await startTestBroker({ submitEndpoints: [`tcp://127.0.0.1:${port}`] });
      const tcp = file(
        "tcp.yaml",
        `broker:\n  submit:\n    ipc: false\n    tcp: ["tcp://0.0.0.0:${port}"]\n`,
      );
      const [overTcp] = await runJsonLines(PY, [script, "py.cfg", "{}"], env({ HERALD_CONFIG: tcp }));
      expect(overTcp).toMatchObject({ ok: true });
      // Variables alone, item by item, as herald applies them (no file, and no PyYAML needed for these).
      const [envOnly] = await runJsonLines(
        PY,
        [script, "py.cfg", "{}"],
        env({ HERALD_BROKER__SUBMIT__IPC: "false", HERALD_BROKER__SUBMIT__TCP__0: `tcp://0.0.0.0:${port}` }),
      );
      expect(envOnly).toMatchObject({ ok: true });
      // A missing or broken file is a clear error, not a connection to the default socket.
      const missing = await runJsonLines(
        PY,
        [script, "py.cfg", "{}"],
        env({ HERALD_CONFIG: join(dir, "nope.yaml") }),
      ).catch((e: Error) => e.message);
      expect(String(missing)).toMatch(/CONFIG: herald configuration .*nope\.yaml does not exist/);
      const broken = file("broken.yaml", "paths: [unclosed\n");
      const bad = await runJsonLines(PY, [script, "py.cfg", "{}"], env({ HERALD_CONFIG: broken })).catch(
        (e: Error) => e.message,
      );
      expect(String(bad)).toMatch(/CONFIG: cannot read herald configuration .*broken\.yaml/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("herald_tail.py (a legacy consumer switched to herald's format) prints herald messages", async () => {
    tb = await startTestBroker();
    const child = spawn(
      PY,
      [join(ROOT, "scripts", "herald_tail.py"), "--endpoint", tb.pub.herald, "--count", "1", "py."],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const closed = new Promise((r) => child.on("close", r));
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const client = tb.client();
    let id = "";
    for (let i = 0; i < 100 && out === ""; i++) {
      id = (await client.publish("py.tail", { n: i })).id;
      await waitFor(() => out !== "", 100);
    }
    expect(out.trim()).toMatch(/^py\.tail [0-9a-f-]{36} \{"n": \d+\}$/);
    expect(id).not.toBe("");
    expect(await closed).toBe(0);
  });
});
