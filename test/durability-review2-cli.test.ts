/**
 * Durability review 2, findings 4, 6 and 7, as an operator meets them:
 * - a user outside the broker's 0750 runtime directory was told "no broker ... start herald serve";
 * - an outbox that cannot be opened at start exited 1, not 5 (storage) as docs/cli.md says;
 * - `herald status` showed a sink's old error as LAST ERROR after the sink was up and delivering again.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { lastError } from "../src/cli/status.js";
import { CLI, freePorts, serveEnv } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "herald-dr2-cli-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const NOBODY = 65534;

describe("a publisher who may not enter the broker's runtime directory", () => {
  it("is told permission denied on that directory, with its mode and group, not NO_BROKER", async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const run = join(dir, "run");
    mkdirSync(run, { mode: 0o750 });
    chmodSync(run, 0o750);
    const sock = join(run, "submit.sock");
    // A listening socket file stands for the running broker: this user never gets as far as connecting.
    const server = createServer();
    await new Promise<void>((r) => server.listen(sock, r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const r = spawnSync(process.execPath, [CLI, "status", "--endpoint", `ipc://${sock}`], {
      env: { ...process.env, HERALD_CONFIG: "", HOME: dir },
      uid: NOBODY,
      gid: NOBODY,
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.stderr).not.toContain("NO_BROKER");
    expect(r.stderr).toContain(`permission denied on the directory ${run} (mode 750, owner uid 0, group `);
    expect(r.stderr).toContain("add this user to the broker's group");
    expect(r.status).toBe(1);
  });

  it("still gets NO_BROKER when the socket is simply not there", () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const r = spawnSync(
      process.execPath,
      [CLI, "status", "--endpoint", `ipc://${join(dir, "submit.sock")}`],
      {
        env: { ...process.env, HERALD_CONFIG: "", HOME: dir },
        uid: NOBODY,
        gid: NOBODY,
        encoding: "utf8",
        timeout: 30_000,
      },
    );
    expect(r.stderr).toContain("NO_BROKER");
    expect(r.status).toBe(4);
  });
});

describe("herald serve whose outbox cannot be opened", () => {
  it("exits 5 (storage) when the outbox is damaged, and moves it aside", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, "data"));
    writeFileSync(join(dir, "data", "outbox.db"), Buffer.alloc(8192, 0xa5));
    const [herald, legacy] = await freePorts(2);
    const r = spawnSync(process.execPath, [CLI, "serve"], {
      env: serveEnv(dir, { herald: herald!, legacy: legacy! }),
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(r.stderr).toContain("STORAGE_ERROR");
    expect(r.status).toBe(5);
    expect(readdirSync(join(dir, "data")).some((f) => f.startsWith("outbox.db.corrupt-"))).toBe(true);
  });
});

describe("herald status's LAST ERROR", () => {
  const sink = (over: Record<string, unknown>) =>
    ({
      name: "rabbit",
      kind: "amqp",
      cursor: 10,
      lag: 5,
      delivered: 10,
      retries: 3,
      skipped: 0,
      lastError: "connect ECONNREFUSED",
      lastErrorAt: "2026-01-01T00:00:00.000Z",
      health: { state: "down", sent: 0, received: 0, counters: {} },
      ...over,
    }) as Parameters<typeof lastError>[0];

  it("says when the error was while the sink is down", () => {
    expect(lastError(sink({}))).toBe("connect ECONNREFUSED (at 2026-01-01T00:00:00.000Z)");
  });

  it("shows an error from before the sink came back up and delivered as recovered", () => {
    const up = { state: "up", sent: 0, received: 0, counters: {} };
    expect(lastError(sink({ health: up, lastDeliveredAt: "2026-01-01T00:01:00.000Z" }))).toBe(
      "- (recovered; at 2026-01-01T00:00:00.000Z: connect ECONNREFUSED)",
    );
    // Up, but nothing delivered since and messages waiting: not known to work yet.
    expect(lastError(sink({ health: up, lastDeliveredAt: "2025-12-31T00:00:00.000Z" }))).toContain("(at ");
    expect(lastError(sink({ lastError: undefined, lastErrorAt: undefined }))).toBe("-");
  });
});
