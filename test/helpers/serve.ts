import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as zmq from "zeromq";
import { HeraldClient } from "../../src/client/publisher.js";

export const ROOT = resolve(import.meta.dirname, "..", "..");
/** The bundled CLI that the installed `herald` runs (dist/bin/herald is its launcher): tests run what ships. */
export const CLI = join(ROOT, "dist", "bin", "herald.js");
/** package.json's bin. */
export const LAUNCHER = join(ROOT, "dist", "bin", "herald");
export const PY = "/usr/bin/python3";

export interface ServeProcess {
  child: ChildProcess;
  submit: string;
  env: NodeJS.ProcessEnv;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Environment for a `herald serve` child that keeps all its state under `dir`. */
export function serveEnv(
  dir: string,
  ports: { herald: number; legacy: number },
  extra: NodeJS.ProcessEnv = {},
): NodeJS.ProcessEnv {
  mkdirSync(dir, { recursive: true });
  return {
    ...process.env,
    HERALD_CONFIG: "",
    HERALD_PATHS__RUNTIME_DIR: join(dir, "run"),
    HERALD_PATHS__DATA_DIR: join(dir, "data"),
    HERALD_BROKER__PUBLISH__0__ENDPOINT: `tcp://127.0.0.1:${ports.herald}`,
    HERALD_BROKER__PUBLISH__1__ENDPOINT: `tcp://127.0.0.1:${ports.legacy}`,
    ...extra,
  };
}

/** Start `herald serve` from dist/ and wait until it answers a ping. */
/** A private home for CLI runs with no config file and no broker: its temp dir and the environment. */
export function noBrokerHome(prefix: string): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    dir,
    env: {
      ...process.env,
      HERALD_CONFIG: "",
      HERALD_PATHS__RUNTIME_DIR: join(dir, "run"),
      HERALD_PATHS__DATA_DIR: join(dir, "data"),
    },
  };
}

export async function startServe(env: NodeJS.ProcessEnv, args: string[] = []): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, "serve", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  child.stdout!.resume();
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const submit = `ipc://${join(env["HERALD_PATHS__RUNTIME_DIR"]!, "submit.sock")}`;
  const client = new HeraldClient({ endpoint: submit, timeoutMs: 300, retries: 0 });
  let up = false;
  let exitedEarly = false;
  void exited.then(() => {
    exitedEarly = true;
  });
  const deadline = Date.now() + 15_000;
  while (!up && !exitedEarly && Date.now() < deadline) {
    up = await client.command("ping").then(
      () => true,
      () => false,
    );
  }
  await client.close();
  if (!up) {
    child.kill("SIGKILL");
    throw new Error(`herald serve did not come up:\n${err}`);
  }
  return { child, submit, env, stderr: () => err, exited };
}

/**
 * Free TCP ports on 127.0.0.1, drawn below the kernel's ephemeral range (32768-60999 here): a port from
 * that range, free when asked, can become the local port of any outgoing connection (every ZeroMQ
 * connect of the tests running beside) before the test binds it ("Address already in use").
 */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (!ports.includes(port) && (await canListen(port))) ports.push(port);
  }
  return ports;
}

async function canListen(port: number): Promise<boolean> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** Run a command to completion; resolves with its stdout lines parsed as JSON. */
export function runJsonLines(
  cmd: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<Array<Record<string, string>>> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { env: env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.on("error", rej);
    child.on("close", (code) => {
      if (code !== 0) return rej(new Error(`${cmd} ${args.join(" ")} exited ${code}: ${err}`));
      res(
        out
          .split("\n")
          .filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Record<string, string>),
      );
    });
  });
}

/** Whether nothing holds the endpoint: the test can bind it itself (the socket is closed again at once). */
export async function canBind(endpoint: string): Promise<boolean> {
  const s = new zmq.Publisher({ linger: 0 });
  try {
    await s.bind(endpoint);
    return true;
  } catch {
    return false;
  } finally {
    s.close();
  }
}
