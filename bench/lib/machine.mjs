// The machine and every version, recorded next to each result.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { measureFsync } from "../../dist/storage/fsync-probe.js";
import { PY, ROOT } from "./util.mjs";

const require = createRequire(import.meta.url);

function tryRun(cmd, args, timeout = 20_000) {
  try {
    return execFileSync(cmd, args, { timeout, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
  } catch {
    return undefined;
  }
}

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(require.resolve(`${name}/package.json`, { paths: [ROOT] }), "utf8"))
      .version;
  } catch {
    return undefined;
  }
}

/**
 * Microseconds to touch a fresh anonymous 4 KiB page (median of 3 x 16 MiB). Usually a fraction of a
 * microsecond; on a VM whose host takes back freed guest memory it can be 10+ us, and every process start
 * touches thousands of new pages (Node's own about 1,900), which moves the cli figure.
 */
function firstTouchUsPerPage() {
  const runs = [];
  for (let k = 0; k < 3; k++) {
    const b = Buffer.allocUnsafeSlow(16 << 20); // this size comes straight from mmap: untouched pages
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < b.length; i += 4096) b[i] = 1;
    runs.push(Number(process.hrtime.bigint() - t0) / 1000 / (b.length / 4096));
  }
  return Math.round(runs.sort((x, y) => x - y)[1] * 100) / 100;
}

export function machine() {
  const cpuinfo = readFileSync("/proc/cpuinfo", "utf8");
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? "unknown";
  const fsync = measureFsync(os.tmpdir(), 200);
  return {
    cores: os.cpus().length,
    cpu: model,
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
    fsync_p50_us: fsync.p50Us,
    fsync_p99_us: fsync.p99Us,
    fsync_dir: os.tmpdir(),
    /** What measureFsync times (an overwrite: the same block every time, the file never grows). */
    fsync_probe: "4 KiB overwrite at offset 0 + fsync",
    first_touch_us_per_page: firstTouchUsPerPage(),
    loadavg_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export async function versions() {
  const zmq = await import("zeromq");
  const Database = require(require.resolve("better-sqlite3", { paths: [ROOT] }));
  const db = new Database(":memory:");
  const sqlite = db.prepare("select sqlite_version()").pluck().get();
  db.close();
  const py = tryRun(PY, [
    "-c",
    "import sys,zmq,pika;print(sys.version.split()[0], zmq.__version__, zmq.zmq_version(), pika.__version__)",
  ])?.split(" ");
  const rabbit = tryRun("rabbitmqctl", ["version"]);
  const commit = tryRun("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"]);
  // Uncommitted changes (tracked or not) mean the commit alone does not say what was measured.
  const status = commit === undefined ? undefined : tryRun("git", ["-C", ROOT, "status", "--porcelain"]);
  const dirty = status ? "+dirty" : "";
  return {
    herald: `${JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")).version} (${commit ?? "?"}${dirty})`,
    node: process.version,
    zeromq: pkgVersion("zeromq"),
    libzmq: zmq.version,
    amqplib: pkgVersion("amqplib"),
    "better-sqlite3": pkgVersion("better-sqlite3"),
    sqlite,
    rabbitmq: rabbit ? `${rabbit} (rabbitmqctl version)` : undefined,
    python3: py?.[0],
    pyzmq: py?.[1],
    "libzmq (pyzmq)": py?.[2],
    pika: py?.[3],
  };
}
