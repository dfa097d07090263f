import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import type { HeraldClient } from "../client/publisher.js";
import type { Subscriber } from "../client/subscriber.js";
import type { ShimHandle } from "./types.js";

/** The demo's sample fedmsg tree (shipped with the package, next to dist/). */
export function sampleLegacyConfig(root: string): string | undefined {
  const dir = join(root, "legacy-config", "small", "fedmsg.d");
  return existsSync(dir) ? dir : undefined;
}

/** Ports of legacy-config/small the demo needs: bodhi.demo's first, koji.demo's, relay_inbound. */
export const DEMO_PORTS = [47001, 47002, 47011, 47900];

export function portsFree(ports: number[]): Promise<boolean> {
  return Promise.all(
    ports.map(
      (p) =>
        new Promise<boolean>((res) => {
          const s = createServer();
          s.once("error", () => res(false));
          s.listen(p, "127.0.0.1", () => s.close(() => res(true)));
        }),
    ),
  ).then((all) => all.every(Boolean));
}

export interface ShimDemoResult {
  lines: string[];
  ok: boolean;
}

const LEGACY_SUB = `
import sys, json, zmq
s = zmq.Context.instance().socket(zmq.SUB); s.setsockopt(zmq.LINGER, 0)
s.setsockopt(zmq.SUBSCRIBE, sys.argv[2].encode()); s.connect(sys.argv[1])
p = zmq.Poller(); p.register(s, zmq.POLLIN)
for _ in range(int(sys.argv[3])):
    if not p.poll(10000): break
    print(json.loads(s.recv_multipart()[1])["msg_id"], flush=True)
`;

/**
 * The shim part of `herald demo`: a fedmsg publisher on bodhi.demo's old port (stage legacy) is seen by
 * a herald subscriber, and herald messages for koji.demo (stage bridged) are seen by a fedmsg subscriber
 * on koji.demo's old port.
 */
export async function runShimDemo(o: {
  root: string;
  python: string;
  client: HeraldClient;
  heraldSub: Set<string>;
  shim: ShimHandle;
  count?: number;
}): Promise<ShimDemoResult> {
  const n = o.count ?? 5;
  const lines: string[] = [];
  // 1. legacy publisher -> herald subscriber
  const pub = await run(o.python, [
    join(o.root, "scripts", "fedmsg_demo_pub.py"),
    "tcp://127.0.0.1:47001",
    "org.example.dev.bodhi.update.comment",
    String(n),
  ]);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !pub.every((id) => o.heraldSub.has(id))) await pause(50);
  const ingested = pub.filter((id) => o.heraldSub.has(id)).length;
  lines.push(
    `fedmsg publisher on bodhi.demo's old port (stage legacy) -> herald subscriber: ${ingested}/${n}`,
  );
  // 2. herald publisher -> legacy subscriber on koji.demo's old port
  const sub = start(o.python, ["-c", LEGACY_SUB, "tcp://127.0.0.1:47011", "org.example.dev.koji", String(n)]);
  const until = Date.now() + 10_000;
  const listening = (): boolean =>
    o.shim
      .status()
      .services["koji.demo"]?.ports["tcp://127.0.0.1:47011"]?.prefixes.includes("org.example.dev.koji") ??
    false;
  while (Date.now() < until && !listening()) await pause(50);
  const acks = await o.client.publishBatch(
    Array.from({ length: n }, (_, i) => ({ topic: "org.example.dev.koji.build.tag", body: { build: i } })),
  );
  const got = await sub;
  const want = acks.map((a) => a.id);
  const seen = want.filter((id) => got.some((m) => m.endsWith(id))).length;
  lines.push(
    `herald publisher -> fedmsg subscriber on koji.demo's old port 47011 (stage bridged): ${seen}/${n}`,
  );
  return { lines, ok: ingested === n && seen === n && pub.length === n };
}

function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function start(cmd: string, args: string[]): Promise<string[]> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.on("error", () => res([]));
    child.on("close", () => res(out.split("\n").filter((l) => l.trim() !== "")));
  });
}

const run = start;

export type { Subscriber };
