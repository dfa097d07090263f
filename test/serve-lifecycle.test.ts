import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HeraldClient } from "../src/client/publisher.js";
import { Subscriber } from "../src/client/subscriber.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { collectIds, waitFor } from "./helpers/broker.js";
import { CLI, freePorts, type ServeProcess, serveEnv, startServe } from "./helpers/serve.js";
import { configYaml } from "./shim-helpers.js";

// How `herald serve` starts and stops as an operator sees it: real processes, RabbitMQ at 127.0.0.1:5672.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function killOnCleanup(child: ChildProcess, exited: Promise<unknown>): void {
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
  });
}

async function serve(env: NodeJS.ProcessEnv): Promise<ServeProcess> {
  const s = await startServe(env);
  killOnCleanup(s.child, s.exited);
  return s;
}

/** A TCP server that accepts connections and never answers: an AMQP connect to it hangs (10 s timeout). */
async function silentServer(
  port?: number,
): Promise<{ server: Server; port: number; accepted: Promise<void> }> {
  const sockets: Socket[] = [];
  let onAccept: () => void = () => {};
  const accepted = new Promise<void>((r) => {
    onAccept = r;
  });
  const server = createServer((s) => {
    s.on("error", () => {});
    sockets.push(s);
    onAccept();
  });
  await new Promise<void>((r) => server.listen(port ?? 0, "127.0.0.1", r));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const bound = (server.address() as { port: number }).port;
  return { server, port: bound, accepted };
}

function sourceEnv(url: string): NodeJS.ProcessEnv {
  const source = {
    name: "src1",
    type: "amqp",
    url,
    queue: `herald-test-lifecycle-${process.pid}`,
    ingest: true,
  };
  return { HERALD_SOURCES: JSON.stringify([source]) };
}

/** The exit code, or "timeout" if it did not exit on its own within `ms` (it is then killed by cleanup). */
function exitWithin(s: ServeProcess, ms: number): Promise<number | null | "timeout"> {
  return Promise.race([s.exited, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms))]);
}

describe("herald serve whose start fails", () => {
  it("stops the broker and exits 1 when a source's RabbitMQ refuses the credentials", async () => {
    const dir = tempDir("herald-life-creds-");
    const [hp, lp] = await freePorts(2);
    const env = serveEnv(
      dir,
      { herald: hp!, legacy: lp! },
      sourceEnv("amqp://guest:WRONG-PASSWORD@127.0.0.1:5672/%2F"),
    );
    // Before, the broker kept running (and acknowledging) after the failed start, deaf to SIGTERM.
    const r = spawnSync(process.execPath, [CLI, "serve"], {
      env,
      encoding: "utf8",
      timeout: 30_000,
      killSignal: "SIGKILL",
    });
    expect(r.signal).toBeNull(); // it exited by itself
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("AMQP 'src1'");
    expect(r.stderr).toContain("refused the connection");
    expect(r.stderr).toContain("broker stopped"); // the broker was stopped, not abandoned
    expect(existsSync(join(dir, "run", "submit.sock"))).toBe(false);
  });
});

describe("herald serve stopped while it starts", () => {
  it("abandons a source connect that hangs on SIGTERM instead of finishing the start first", async () => {
    const dir = tempDir("herald-life-term-");
    const silent = await silentServer();
    const [hp, lp] = await freePorts(2);
    const env = serveEnv(
      dir,
      { herald: hp!, legacy: lp! },
      sourceEnv(`amqp://guest:guest@127.0.0.1:${silent.port}/%2F`),
    );
    const s = await serve(env); // the broker answers; the source ingest is still connecting
    await silent.accepted;
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    // The start never completed (it used to wait out the 10 s connect timeout, then start everything).
    expect(s.stderr()).not.toContain("config file=");
    expect(s.stderr()).toContain("stopping signal=SIGTERM");
    expect(s.stderr()).toContain("broker stopped");
  });

  it("exits 5 by itself after a storage fail-stop that happens while a source is still connecting", async () => {
    const dir = tempDir("herald-life-fatal-");
    const silent = await silentServer();
    const [hp, lp] = await freePorts(2);
    const env = serveEnv(
      dir,
      { herald: hp!, legacy: lp! },
      {
        ...sourceEnv(`amqp://guest:guest@127.0.0.1:${silent.port}/%2F`),
        HERALD_FAILPOINTS: "outbox.before_commit=error",
      },
    );
    const s = await serve(env);
    await silent.accepted;
    const client = new HeraldClient({ endpoint: s.submit, timeoutMs: 2000, retries: 0 });
    cleanups.push(() => client.close());
    await expect(client.publish("org.example.fatal", { n: 1 })).rejects.toMatchObject({
      code: "STORAGE_ERROR",
    });
    // Before, the fail-stop hit serve's `running` before it was assigned: the process never exited.
    expect(await exitWithin(s, 20_000)).toBe(5);
    expect(s.stderr()).toContain("broker stopped");
  });
});

describe("herald serve stopped while a source reconnects", () => {
  it("does not wait for the hanging connect: the broker stops cleanly within the grace", async () => {
    const dir = tempDir("herald-life-recon-");
    const [hp, lp, amqpPort] = await freePorts(3);
    const env = serveEnv(
      dir,
      { herald: hp!, legacy: lp! },
      {
        ...sourceEnv(`amqp://guest:guest@127.0.0.1:${amqpPort}/%2F`),
        HERALD_BROKER__SHUTDOWN_GRACE: "1s",
      },
    );
    // Nothing listens yet: the source starts "down" and retries in the background.
    const s = await serve(env);
    const silent = await silentServer(amqpPort);
    await silent.accepted; // a reconnect attempt now hangs in the AMQP handshake
    s.child.kill("SIGTERM");
    // Before, closing the source waited for that connect (10 s): the hard exit (grace + 2 s) came first,
    // exit 1 without stopping the broker (an unclean outbox close).
    expect(await s.exited).toBe(0);
    expect(s.stderr()).toContain("broker stopped");
  });
});

describe("a second herald serve on the same runtime directory, another data directory", () => {
  it("refuses before binding anything, so the first broker's ipc:// PUB socket keeps its subscribers", async () => {
    const dir = tempDir("herald-life-pub-");
    const pub = `ipc://${join(dir, "run", "pub.sock")}`;
    const [lp, lp2] = await freePorts(2);
    const env = { ...serveEnv(dir, { herald: 0, legacy: lp! }), HERALD_BROKER__PUBLISH__0__ENDPOINT: pub };
    const first = await serve(env);
    const env2 = {
      ...env,
      HERALD_PATHS__DATA_DIR: join(dir, "data2"),
      HERALD_BROKER__PUBLISH__1__ENDPOINT: `tcp://127.0.0.1:${lp2}`,
    };
    const r = spawnSync(process.execPath, [CLI, "serve"], { env: env2, encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("another herald serve is listening there");

    // A subscriber connecting now still reaches the first broker's PUB socket.
    const sub = new Subscriber({
      sources: [new ZmqSubscribeTransport({ name: "h", endpoints: [pub], format: "herald" })],
    });
    cleanups.push(() => sub.close());
    const got = collectIds(sub);
    const client = new HeraldClient({ endpoint: first.submit, timeoutMs: 2000 });
    cleanups.push(() => client.close());
    const sent: string[] = [];
    const arrived = await waitFor(
      () => {
        void client.publish("org.example.pub", { n: sent.length }).then(
          (a) => sent.push(a.id),
          () => {}, // a publish still waiting when the test ends
        );
        return sent.some((id) => got.ids.includes(id));
      },
      10_000,
      200,
    );
    expect(arrived).toBe(true);
  });
});

describe("two shim-enabled herald serve sharing a runtime directory (no IPC submit)", () => {
  it("refuses the second while the pid file names the first, which keeps its pid file", async () => {
    const dir = tempDir("herald-life-pid-");
    const [h1, l1, s1, h2, l2, s2] = await freePorts(6);
    const start = (name: string, ports: { herald: number; legacy: number }, submitPort: number) => {
      const file = join(dir, `${name}.yaml`);
      const yaml = configYaml(join(dir, name), ports, {
        services: {},
        submit: { ipc: false, tcp: [`tcp://127.0.0.1:${submitPort}`] },
      });
      // One runtime directory for both, as two units given the same RuntimeDirectory= would have.
      writeFileSync(file, yaml.replace(join(dir, name, "run"), join(dir, "run")));
      return { ...process.env, HERALD_CONFIG: file };
    };
    const env1 = start("one", { herald: h1!, legacy: l1! }, s1!);
    const first = spawn(process.execPath, [CLI, "serve"], { env: env1, stdio: "ignore" });
    const firstExited = new Promise((r) => first.on("exit", r));
    killOnCleanup(first, firstExited);
    const pidFile = join(dir, "run", "herald.pid");
    const ping = new HeraldClient({ endpoint: `tcp://127.0.0.1:${s1}`, timeoutMs: 500, retries: 20 });
    cleanups.push(() => ping.close());
    await ping.command("ping");
    expect(await waitFor(() => existsSync(pidFile), 10_000)).toBe(true);
    expect(readFileSync(pidFile, "utf8").trim()).toBe(String(first.pid));

    const env2 = start("two", { herald: h2!, legacy: l2! }, s2!);
    const r = spawnSync(process.execPath, [CLI, "serve"], {
      env: env2,
      encoding: "utf8",
      timeout: 20_000,
      killSignal: "SIGKILL",
    });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`names herald process ${first.pid}, which is running`);
    expect(readFileSync(pidFile, "utf8").trim()).toBe(String(first.pid));
    // `herald shim` on its own (legacy.shimInBroker: false) writes the same pid file: refused alike.
    const shim = spawnSync(process.execPath, [CLI, "shim"], {
      env: env2,
      encoding: "utf8",
      timeout: 20_000,
      killSignal: "SIGKILL",
    });
    expect(shim.signal).toBeNull();
    expect(shim.status).not.toBe(0);
    expect(shim.stderr).toContain(`names herald process ${first.pid}, which is running`);
    expect(readFileSync(pidFile, "utf8").trim()).toBe(String(first.pid));
  });
});
