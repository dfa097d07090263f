/**
 * Edges of the watch after retirement found in review: a reload racing the shim's stop, evidence whose
 * stageSince is unknown, an absurd legacy.watchRetired.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { loadConfigText } from "../src/config/load.js";
import type { HeraldConfig } from "../src/config/schema.js";
import { ConfigError } from "../src/errors.js";
import type { EvidenceFile } from "../src/shim/evidence.js";
import { startShim } from "../src/shim/shim.js";
import { History } from "../src/shim/snapshot.js";
import { WatchedPorts } from "../src/shim/watch.js";
import type { ZmqPublishOptions } from "../src/transport/zeromq-pub.js";
import { silentLogger } from "../src/util/log.js";
import { canBind, freePorts } from "./helpers/serve.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function eventually(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50)))
    if (await cond()) return true;
  return cond();
}

function config(dir: string, stage: string, endpoint: string, watchRetired: string): HeraldConfig {
  const text = stringify({
    paths: { runtimeDir: join(dir, "run"), dataDir: join(dir, "data") },
    broker: { name: "edge", publish: [] },
    legacy: {
      enabled: true,
      topicPrefix: "org.example",
      environment: "dev",
      watchRetired,
      services: { "wiki.test": { stage, endpoints: [endpoint] } },
    },
  });
  return loadConfigText(text, { file: join(dir, "herald.yaml"), env: {} }).config;
}

describe("the watch after retirement, edges", () => {
  it("a reload to retired queued as the shim stops binds nothing: the port is free after stop", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-watch-edge-"));
    dirs.push(dir);
    const [port] = await freePorts(1);
    const ep = `tcp://127.0.0.1:${port}`;
    const shim = await startShim(config(dir, "bridged", ep, "1h"), silentLogger, {
      feed: "sink",
      submitter: {
        submit: async (ms) => ms.map((m) => ({ id: m.id, seq: 1, acceptedAt: "", duplicate: false })),
      },
      settleMs: 100,
    });
    expect(await eventually(async () => !(await canBind(ep)), 5000)).toBe(true);
    // Same tick: before the fix the queued reload ran after stop() closed everything and bound a watch.
    await Promise.all([shim.stop(), shim.reload(config(dir, "retired", ep, "1h"))]);
    expect(await eventually(() => canBind(ep), 3000)).toBe(true);
  });

  it("evidence with no usable stageSince ends the watch instead of starting it over at every restart", () => {
    const ev = (stageSince: string): EvidenceFile => ({
      version: 1,
      broker: "b",
      pid: 1,
      updatedAt: new Date().toISOString(),
      services: {
        "wiki.test": {
          stage: "retired",
          stageSince,
          endpoints: [],
          ingest: { ingested: 0, duplicates: 0, malformed: 0, rejected: 0, dropped: 0 },
          ports: {},
          watch: { until: "2026-01-01T00:00:00.000Z", stragglers: 2, prefixes: [] },
        },
      },
    });
    expect(new History(ev("2026-11-30T00:00:00.000Z")).hasWatch("wiki.test")).toBe(true);
    expect(new History(ev("")).hasWatch("wiki.test")).toBe(false);
    expect(new History(ev("not a date")).hasWatch("wiki.test")).toBe(false);
  });

  it("refuses a legacy.watchRetired whose end no date can hold (over 10 years)", () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-watch-edge-"));
    dirs.push(dir);
    expect(() => config(dir, "retired", "tcp://127.0.0.1:1", "100000000d")).toThrow(ConfigError);
    expect(() => config(dir, "retired", "tcp://127.0.0.1:1", "100000000d")).toThrow(/at most 3650d/);
    expect(config(dir, "retired", "tcp://127.0.0.1:1", "3650d").legacy.watchRetired).toBe(3650 * 86_400_000);
  });

  it("a port bound for watching (after a restart) is handed back to a restore with broker.sendHighWaterMark", async () => {
    const [port] = await freePorts(1);
    const ep = `tcp://127.0.0.1:${port}`;
    const w = new WatchedPorts({
      service: "wiki.test",
      endpoints: [ep],
      brokerName: "edge",
      sendHighWaterMark: 500,
      log: silentLogger,
      onEvent: () => {},
    });
    await w.start();
    const t = w.handOver().get(ep);
    try {
      expect(t).toBeDefined();
      // The option the restored service then serves with (it was unset: libzmq's 1,000, not the config's).
      expect((t as unknown as { opts: ZmqPublishOptions }).opts.sendHighWaterMark).toBe(500);
    } finally {
      await t?.close();
    }
  });
});
