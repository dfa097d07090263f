/**
 * A dispatcher whose cursor is below the outbox head with the rows after it pruned (after a crash: a rewind
 * on an idle bus past its retention, or a cursor saved before the prune) once read an empty page, found the
 * head past its cursor and went round again without ever yielding: the restarted broker answered nothing.
 * Real child processes, killed with SIGKILL; a starved child is caught by the test's own deadlines.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { HeraldClient } from "../src/client/publisher.js";
import { type ChildRun, ensureDist, runChild } from "./fixtures/outbox-dist.js";

const CHILD = new URL("./fixtures/dispatcher-child.mjs", import.meta.url).pathname;

beforeAll(() => ensureDist(), 120_000);

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "herald-dispatcher-crash-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function start(mode: string, dir: string): ChildRun {
  const run = runChild([mode, dir], {}, CHILD);
  cleanups.push(() => run.kill());
  return run;
}

/** Resolves false when `p` has not settled within `ms` (a starved child never prints). */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([
    p.then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
  ]);
}

/** Kill the first run with SIGKILL once it printed `marker`; start the broker again; submit; see it delivered. */
async function crashThenServe(mode: string, marker: string): Promise<void> {
  const dir = tempDir();
  const first = start(mode, dir);
  await first.waitFor(marker, 1);
  first.kill();
  expect(await first.exited).toBe("SIGKILL");
  const second = start("serve", dir);
  expect(await within(second.waitFor("READY", 1), 10_000)).toBe(true);
  const client = new HeraldClient({
    endpoint: `ipc://${join(dir, "run", "submit.sock")}`,
    timeoutMs: 2000,
    retries: 1,
  });
  cleanups.push(() => client.close());
  const ack = await client.publish("org.test.crash.after", { after: "restart" });
  expect(await within(second.waitFor(`DELIVERED ${ack.id}`, 1), 10_000)).toBe(true);
}

describe("dispatcher after a crash, over pruned rows (child processes)", () => {
  it("a ZeroMQ sink rewound on an idle bus whose rows were pruned: the restarted broker serves and delivers", async () => {
    await crashThenServe("pruned", "PRUNED 3");
  }, 60_000);

  it("a saved cursor before pruned rows: the restarted broker serves and delivers", async () => {
    await crashThenServe("lagging", "LAGGING");
  }, 60_000);

  it("rows pruned under a rewound dispatcher before its first read: it moves on and delivers what comes next", async () => {
    const run = start("prune-in-delay", tempDir());
    expect(await within(run.waitFor("APPENDED ", 1), 10_000)).toBe(true);
    const id = run.lines.find((l) => l.startsWith("APPENDED "))?.split(" ")[1];
    expect(await within(run.waitFor(`DELIVERED ${id}`, 1), 10_000)).toBe(true);
    // Nothing before it: the pruned rows were not there to resend.
    expect(run.lines.filter((l) => l.startsWith("DELIVERED "))).toEqual([`DELIVERED ${id}`]);
  }, 60_000);
});
