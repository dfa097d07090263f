import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrokerStatus } from "../broker/broker.js";
import { clientSubmitEndpoint } from "../broker/from-config.js";
import { createClient, subscribe } from "../client/index.js";
import type { Subscriber } from "../client/subscriber.js";
import { loadConfig } from "../config/load.js";
import { DEMO_PORTS, portsFree, runShimDemo, sampleLegacyConfig } from "../shim/demo.js";
import { createLogger } from "../util/log.js";
import { cliEntry, packageRoot } from "../util/package-root.js";
import { EXIT, noMore, out, parse, UsageError } from "./args.js";
import { startBroker } from "./serve.js";
import { render } from "./status.js";
import { render as renderTrace } from "./trace.js";

const USAGE = `usage: herald demo [--processes N] [--messages M] [--keep]

Start a broker on embedded defaults (state in a temporary directory, nothing else needed), then a pool of
short-lived publisher processes (Node CLI, and Python with the documented protocol when python3-zmq is
installed) while a herald-format and a legacy-format subscriber listen. Every message must reach both.
With python3-zmq, the migration shim runs too on legacy-config/small: a fedmsg publisher on a legacy-stage
service reaches herald subscribers, and herald messages for a bridged service reach a fedmsg subscriber on
that service's old port.`;

const ROOT = packageRoot();
const PY = "/usr/bin/python3";

/** A whole number from 1 to `max` (the demo starts that many processes or messages per process). */
function countFlag(flag: string, value: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new UsageError(`${flag} takes a whole number from 1 to ${max}, not '${value}'`);
  return n;
}

export async function demo(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      processes: { type: "string", default: "8" },
      messages: { type: "string", default: "5" },
      keep: { type: "boolean" },
    },
    USAGE,
  );
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  noMore(positionals, USAGE);
  const procs = countFlag("--processes", values.processes, 64);
  const perProc = countFlag("--messages", values.messages, 100_000);
  const dir = mkdtempSync(join(tmpdir(), "herald-demo-"));
  const python = hasPythonZmq();
  const legacyDir = sampleLegacyConfig(ROOT);
  const shimOn = python && legacyDir !== undefined && (await portsFree(DEMO_PORTS));
  const env = await demoEnv(dir, shimOn ? legacyDir : undefined);
  const config = loadConfig({ env }).config;
  const log = createLogger({ level: "warn" });
  out(`herald demo: state in ${dir}`);
  if (!python)
    out("note: /usr/bin/python3 with python3-zmq not found: skipping the Python and migration-shim parts");
  else if (!shimOn)
    out("note: legacy-config/small or its ports 47001/47002/47011/47900 unavailable: skipping the shim part");
  const running = await startBroker(config, log);
  const endpoint = clientSubmitEndpoint(config);
  out(
    `broker up: submit ${endpoint}; PUB ${config.broker.publish.map((p) => `${p.format} ${p.endpoint}`).join(", ")}`,
  );
  const subs = {
    herald: subscribe(["demo.#"], { config, formats: ["herald"] }),
    legacy: subscribe(["demo.#"], { config, formats: ["legacy"] }),
    shim: subscribe(["org.example.#"], { config, formats: ["herald"] }),
  };
  const seen = { herald: new Set<string>(), legacy: new Set<string>(), shim: new Set<string>() };
  const readers = Object.entries(subs).map(([k, s]) => collect(s, seen[k as keyof typeof seen]));
  try {
    await waitForLink(endpoint, seen);
    const expected = await runPool(endpoint, procs, perProc, python, env);
    out(
      `published ${expected.size} messages from ${procs} Node processes${python ? " and 2 Python processes" : ""}`,
    );
    const ok = await waitAll(expected, seen, 10_000);
    for (const k of ["herald", "legacy"] as const) {
      const got = [...expected].filter((id) => seen[k].has(id)).length;
      out(`${k.padEnd(6)} subscriber saw ${got}/${expected.size}`);
    }
    const client = createClient({ config });
    let shimOk = true;
    if (shimOn && running.shim) {
      const r = await runShimDemo({
        root: ROOT,
        python: PY,
        client,
        heraldSub: seen.shim,
        shim: running.shim,
      });
      for (const l of r.lines) out(l);
      shimOk = r.ok;
    }
    out(`\n${render((await client.status()) as BrokerStatus)}`);
    // Where one of them went, as `herald trace ID` shows it.
    const [one] = expected;
    if (one !== undefined) out(`\n$ herald trace ${one}\n${renderTrace(await client.trace(one))}`);
    await client.close();
    const all = ok && shimOk;
    out(
      all
        ? `\ndemo ok: every acknowledged message reached both subscribers${shimOn ? "; the shim bridged legacy and herald both ways" : ""}`
        : `\ndemo FAILED: messages missing${shimOk ? "" : " (migration shim part)"}`,
    );
    return all ? EXIT.ok : EXIT.failed;
  } finally {
    await Promise.all(Object.values(subs).map((s) => s.close()));
    await Promise.all(readers);
    await running.stop();
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

async function demoEnv(dir: string, legacyConfig: string | undefined): Promise<NodeJS.ProcessEnv> {
  const [herald, legacy] = await Promise.all([portOr(9941), portOr(9940)]);
  const shim = legacyConfig
    ? {
        HERALD_LEGACY__ENABLED: "true",
        HERALD_LEGACY__CONFIG: legacyConfig,
        HERALD_LEGACY__TOPIC_PREFIX: "org.example",
        HERALD_LEGACY__ENVIRONMENT: "dev",
        HERALD_LEGACY__SERVICES: "{koji.demo: {stage: bridged, endpoints: null}}",
      }
    : {};
  return {
    ...process.env,
    ...shim,
    HERALD_CONFIG: "",
    HERALD_PATHS__RUNTIME_DIR: join(dir, "run"),
    HERALD_PATHS__DATA_DIR: join(dir, "data"),
    HERALD_BROKER__PUBLISH__0__ENDPOINT: `tcp://127.0.0.1:${herald}`,
    HERALD_BROKER__PUBLISH__1__ENDPOINT: `tcp://127.0.0.1:${legacy}`,
  };
}

/** The default port when it is free, else any free port (so the demo runs beside a real broker). */
function portOr(preferred: number): Promise<number> {
  return new Promise((res) => {
    const srv = createServer();
    srv.once("error", () => {
      const any = createServer();
      any.listen(0, "127.0.0.1", () => {
        const port = (any.address() as { port: number }).port;
        any.close(() => res(port));
      });
    });
    srv.listen(preferred, "127.0.0.1", () => srv.close(() => res(preferred)));
  });
}

async function collect(sub: Subscriber, into: Set<string>): Promise<void> {
  try {
    for await (const m of sub) into.add(m.message.id);
  } catch {
    // closed
  }
}

/** Subscribers connect asynchronously (ZeroMQ's slow joiner): publish probes until both see one. */
async function waitForLink(endpoint: string, seen: Record<"herald" | "legacy", Set<string>>): Promise<void> {
  const client = createClient({ endpoint });
  try {
    for (let i = 0; i < 100; i++) {
      const ack = await client.publish("demo.probe", { i });
      await new Promise((r) => setTimeout(r, 50));
      if (seen.herald.has(ack.id) && seen.legacy.has(ack.id)) return;
    }
  } finally {
    await client.close();
  }
}

function hasPythonZmq(): boolean {
  return existsSync(PY) && spawnSync(PY, ["-c", "import zmq"], { stdio: "ignore" }).status === 0;
}

/** Short-lived publisher processes; returns the acknowledged ids they printed. */
async function runPool(
  endpoint: string,
  procs: number,
  perProc: number,
  python: boolean,
  env: NodeJS.ProcessEnv,
): Promise<Set<string>> {
  const cli = cliEntry();
  const jobs: Array<Promise<string[]>> = [];
  for (let p = 0; p < procs; p++) {
    const lines = Array.from({ length: perProc }, (_, i) => JSON.stringify({ process: p, n: i })).join("\n");
    jobs.push(
      run(
        process.execPath,
        [cli, "publish", `demo.node.p${p}`, "-", "--json", "--endpoint", endpoint],
        env,
        lines,
      ),
    );
  }
  if (python) {
    const script = join(ROOT, "scripts", "herald_publish.py");
    for (let p = 0; p < 2; p++) {
      jobs.push(
        run(
          PY,
          [script, "--endpoint", endpoint, `demo.python.p${p}`, JSON.stringify({ python: p })],
          env,
          "",
        ),
      );
    }
  }
  const ids = new Set<string>();
  for (const lines of await Promise.all(jobs)) {
    for (const l of lines) ids.add((JSON.parse(l) as { id: string }).id);
  }
  return ids;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, stdin: string): Promise<string[]> {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { env, stdio: ["pipe", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.on("error", rej);
    child.on("close", (code) =>
      code === 0
        ? res(stdout.split("\n").filter((l) => l.startsWith("{")))
        : rej(new Error(`${cmd} exited ${code}`)),
    );
    child.stdin.end(stdin);
  });
}

async function waitAll(
  expected: Set<string>,
  seen: Record<"herald" | "legacy", Set<string>>,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  const done = (): boolean => [...expected].every((id) => seen.herald.has(id) && seen.legacy.has(id));
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return done();
}
