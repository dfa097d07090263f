// Child processes: every child is tracked and killed when the run ends, even on error or Ctrl-C; temp
// directories and registered cleanups (RabbitMQ queues) are removed then too.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const children = new Set();
const dirs = new Set();
const cleanups = new Set();
/** How long Ctrl-C waits for the registered cleanups before exiting anyway. */
const CLEANUP_MS = 10_000;
let interrupted = false;

/** Track a child spawned elsewhere, so that it is killed with the others when the run ends. */
export function trackChild(child) {
  children.add(child);
  const forget = () => children.delete(child);
  child.on("exit", forget);
  child.on("error", forget);
  return child;
}

/** A fresh temp directory, removed when the process exits however it ends (the caller may remove it sooner). */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}

/**
 * Register an async cleanup (a RabbitMQ queue to delete) that Ctrl-C / SIGTERM runs before exiting: the
 * signal ends the process before any `finally` could. Returns a function that unregisters it (call it
 * once the normal path has cleaned up).
 */
export function onInterrupt(fn) {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** True once SIGINT/SIGTERM arrived: the runner starts no further figure group. */
export function isInterrupted() {
  return interrupted;
}

export function killAllChildren() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill("SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  children.clear();
}

function removeTempDirs() {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
}

process.on("exit", () => {
  killAllChildren();
  removeTempDirs();
});
for (const sig of ["SIGINT", "SIGTERM"]) {
  const code = sig === "SIGINT" ? 130 : 143;
  process.on(sig, () => {
    if (interrupted) {
      process.stderr.write(`bench: ${sig} again: exiting without waiting for cleanups\n`);
      process.exit(code);
    }
    interrupted = true;
    // Children first (a broker's sink must stop publishing into the queue being deleted), then the
    // registered cleanups, bounded: RabbitMQ may be the thing that hangs. Temp dirs go in the exit handler.
    killAllChildren();
    process.stderr.write(`bench: ${sig}: cleaning up (at most ${CLEANUP_MS / 1000} s; again to quit now)\n`);
    const all = Promise.allSettled([...cleanups].map((fn) => Promise.resolve().then(fn)));
    const late = new Promise((r) => setTimeout(r, CLEANUP_MS));
    void Promise.race([all, late]).then(() => process.exit(code));
  });
}

/**
 * Start a child whose stdout is JSON lines. Returns helpers to wait for a line matching a predicate,
 * to send a line on stdin, and a promise of all lines once it exits.
 */
export function startChild(cmd, args, { env = process.env, cwd, stdin = "pipe", nodeArgs } = {}) {
  const child = spawn(cmd, nodeArgs ? [...nodeArgs, ...args] : args, {
    env,
    cwd,
    stdio: [stdin, "pipe", "pipe"],
  });
  children.add(child);
  const lines = [];
  const waiters = [];
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d.toString();
    if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
  });
  createInterface({ input: child.stdout }).on("line", (line) => {
    if (!line.startsWith("{")) return;
    let obj;
    try {
      obj = JSON.parse(line);
    } catch {
      return;
    }
    lines.push(obj);
    for (const w of [...waiters]) {
      if (w.pred(obj)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(obj);
      }
    }
  });
  const exited = new Promise((res) => {
    child.on("exit", (code, signal) => {
      children.delete(child);
      for (const w of waiters.splice(0)) w.reject(new Error(failText(cmd, args, code, signal, stderr)));
      res({ code, signal });
    });
    child.on("error", (err) => {
      children.delete(child);
      for (const w of waiters.splice(0)) w.reject(err);
      res({ code: -1, signal: null, error: err });
    });
  });
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    /** Resolve with the first line (already seen or future) matching `pred`. */
    waitLine(pred, timeoutMs = 60_000) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve, reject };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`timeout waiting for output of ${cmd} ${args.join(" ")}\n${stderr.slice(-2000)}`));
        }, timeoutMs);
        w.resolve = (v) => {
          clearTimeout(t);
          resolve(v);
        };
        w.reject = (e) => {
          clearTimeout(t);
          reject(e);
        };
        waiters.push(w);
      });
    },
    send(obj) {
      child.stdin?.write(`${typeof obj === "string" ? obj : JSON.stringify(obj)}\n`);
    },
    /** Wait for exit; rejects on a non-zero exit. Resolves with the stdout JSON lines. */
    async done(timeoutMs = 600_000) {
      const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      const { code, signal } = await exited;
      clearTimeout(t);
      if (code !== 0) throw new Error(failText(cmd, args, code, signal, stderr));
      return lines;
    },
    kill(sig = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    },
  };
}

function failText(cmd, args, code, signal, stderr) {
  return `${cmd} ${args.join(" ")} exited ${code ?? signal}: ${stderr.slice(-2000)}`;
}

/** Run to completion; the last JSON line is the result. */
export async function runJson(cmd, args, opts = {}) {
  const c = startChild(cmd, args, { ...opts, stdin: "ignore" });
  const lines = await c.done(opts.timeoutMs);
  const last = lines.at(-1);
  if (!last) throw new Error(`${cmd} ${args.join(" ")} printed no JSON result: ${c.stderr().slice(-2000)}`);
  if (last.error) throw new Error(`${cmd} ${args.join(" ")}: ${last.error}`);
  return last;
}

/** Node worker under bench/workers. */
export function nodeWorker(script, args = [], opts = {}) {
  return startChild(
    process.execPath,
    [new URL(`../workers/${script}`, import.meta.url).pathname, ...args],
    opts,
  );
}

/**
 * Free TCP ports on 127.0.0.1, drawn below the kernel's ephemeral range (32768-60999 here), as the tests'
 * helper does: a port from that range, free when asked, can become the local port of an outgoing
 * connection (a client, RabbitMQ's) before the broker binds it ("Address already in use": the security
 * figure's broker failed to start so once).
 */
export async function freePorts(n) {
  const ports = [];
  while (ports.length < n) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (!ports.includes(port) && (await canListen(port))) ports.push(port);
  }
  return ports;
}

function canListen(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

const TICK = 100; // USER_HZ on Linux

/** RSS (bytes) and cumulative CPU seconds of a process, from /proc. */
export function procUsage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rss: rssKb * 1024, cpuSec: (utime + stime) / TICK };
}

/** CPU use (% of one core) and peak RSS of `pid` while `during` runs, sampled every `stepMs`. */
export async function sampleUsage(pid, during, stepMs = 200) {
  const start = procUsage(pid);
  const t0 = performance.now();
  let peak = start.rss;
  let running = true;
  const sampler = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, stepMs));
      try {
        peak = Math.max(peak, procUsage(pid).rss);
      } catch {
        return;
      }
    }
  })();
  let result;
  try {
    result = await during();
  } finally {
    running = false;
    await sampler;
  }
  const end = procUsage(pid);
  const secs = (performance.now() - t0) / 1000;
  return { result, cpuPct: ((end.cpuSec - start.cpuSec) / secs) * 100, peakRss: peak, endRss: end.rss, secs };
}
