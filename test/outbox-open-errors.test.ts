/**
 * Opening an outbox: only damage moves the file aside. A lock, permissions, too few file descriptors or an
 * I/O error while checking it leave it where it is, with a typed error naming the cause and the fix; a
 * failed move is typed too.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import type BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ensureDist } from "./fixtures/outbox-dist.js";
import { msgs, outboxFile, thrownBy } from "./fixtures/outbox-helpers.js";

const hooks = vi.hoisted(() => ({
  /** Called with the source path before each renameSync. */
  rename: undefined as ((from: string) => void) | undefined,
  /** Stands in for PRAGMA quick_check when set. */
  quickCheck: undefined as (() => unknown) | undefined,
}));

vi.mock("node:fs", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs")>();
  const renameSync: typeof actual.renameSync = (from, to) => {
    hooks.rename?.(String(from));
    actual.renameSync(from, to);
  };
  return { ...actual, default: { ...actual, renameSync }, renameSync };
});

vi.mock("better-sqlite3", async (importOriginal) => {
  const Database = (await importOriginal<{ default: typeof BetterSqlite3 }>()).default;
  class Checked extends Database {
    override pragma(source: string, options?: BetterSqlite3.PragmaOptions): unknown {
      if (source === "quick_check" && hooks.quickCheck) return hooks.quickCheck();
      return super.pragma(source, options);
    }
  }
  return { default: Checked };
});

const cleanups: Array<() => void> = [];
afterEach(() => {
  hooks.rename = undefined;
  hooks.quickCheck = undefined;
  for (const c of cleanups.splice(0).reverse()) c();
});

/** An outbox file with 3 undelivered messages, left as a crash leaves it (the next open checks it). */
function crashedOutbox(): ReturnType<typeof outboxFile> {
  const f = outboxFile((fn) => cleanups.push(fn));
  const box = f.open();
  box.registerSink("amqp");
  box.appendSync(msgs(3));
  box.close({ clean: false });
  return f;
}

const sqliteError = (code: string, message: string): Error => Object.assign(new Error(message), { code });

describe("outbox open: what is not damage stays in place", () => {
  it.each([
    ["SQLITE_IOERR_LOCK", "disk I/O error", /owner and mode/],
    ["SQLITE_READONLY", "attempt to write a readonly database", /owner and mode/],
    ["SQLITE_CANTOPEN", "unable to open database file", /LimitNOFILE/],
    ["SQLITE_IOERR", "disk I/O error", /check the disk/],
  ])("%s while checking: STORAGE_ERROR naming the fix, the file not moved", (code, text, fix) => {
    const f = crashedOutbox();
    hooks.quickCheck = () => {
      throw sqliteError(code, text);
    };
    const err = thrownBy(() => f.open());
    expect(err?.code).toBe("STORAGE_ERROR");
    expect(err?.message).toContain(code);
    expect(err?.message).toMatch(fix);
    expect(err?.details["quarantined"]).toBeUndefined();
    hooks.quickCheck = undefined;
    expect(readdirSync(f.dir).filter((n) => n.includes("corrupt"))).toEqual([]);
    expect(f.open().stats().totalRows).toBe(3);
  });

  it.each([
    ["SQLITE_CORRUPT", "database disk image is malformed"],
    ["SQLITE_NOTADB", "file is not a database"],
  ])("%s while checking: damage, moved aside", (code, text) => {
    const f = crashedOutbox();
    hooks.quickCheck = () => {
      throw sqliteError(code, text);
    };
    const err = thrownBy(() => f.open());
    expect(err?.code).toBe("STORAGE_ERROR");
    expect(String(err?.details["quarantined"])).toContain(".corrupt-");
    expect(existsSync(f.path)).toBe(false);
  });

  it("a failed move aside is STORAGE_ERROR naming the damage and what to do", () => {
    const f = crashedOutbox();
    hooks.quickCheck = () => [
      { quick_check: "*** in database main *** Page 7: btreeInitPage() returns error" },
    ];
    hooks.rename = () => {
      throw Object.assign(new Error("EACCES: permission denied, rename"), { code: "EACCES" });
    };
    const err = thrownBy(() => f.open());
    expect(err?.code).toBe("STORAGE_ERROR");
    expect(err?.message).toContain("btreeInitPage");
    expect(err?.message).toContain("EACCES");
    expect(err?.message).toContain("move the file");
  });
});

describe("outbox open out of file descriptors (child process)", () => {
  beforeAll(() => ensureDist(), 120_000);

  it("EMFILE while checking leaves the file where it is; the next start has every message", () => {
    const f = crashedOutbox();
    const child = new URL("./fixtures/outbox-emfile-child.mjs", import.meta.url).pathname;
    const out = execFileSync(
      "bash",
      ["-c", 'ulimit -n 256 && exec "$0" "$1" "$2"', process.execPath, child, f.path],
      { encoding: "utf8" },
    );
    const result = JSON.parse(out.trim()) as { code?: string; details?: Record<string, unknown> };
    expect(result.code).toBe("STORAGE_ERROR");
    expect(result.details?.["quarantined"]).toBeUndefined();
    expect(readdirSync(f.dir).filter((n) => n.includes("corrupt"))).toEqual([]);
    expect(f.open().stats().totalRows).toBe(3);
  });
});
