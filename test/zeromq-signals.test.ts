import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { retryInterrupted } from "../src/util/zeromq.js";
import { ROOT, runJsonLines } from "./helpers/serve.js";

/** An error as zeromq.js throws it for a failed libzmq call. */
function zmqError(code: string): Error {
  return Object.assign(new Error(code), { code });
}

/** A call that fails with the given codes in turn, then returns "done"; counts its tries. */
function failing(...codes: string[]): { call: () => string; tries: () => number } {
  let n = 0;
  return {
    call: () => {
      const code = codes[n++];
      if (code !== undefined) throw zmqError(code);
      return "done";
    },
    tries: () => n,
  };
}

describe("retryInterrupted", () => {
  it("tries an interrupted call again until it goes through", () => {
    const f = failing("EINTR", "EINTR");
    expect(retryInterrupted(f.call)).toBe("done");
    expect(f.tries()).toBe(3);
  });

  it("waits out an inproc endpoint an interrupted monitor start left bound", () => {
    const f = failing("EINTR", "EADDRINUSE", "EADDRINUSE");
    expect(retryInterrupted(f.call)).toBe("done");
    expect(f.tries()).toBe(4);
  });

  it("reports any other failure at once, EADDRINUSE included when nothing was interrupted", () => {
    for (const code of ["EADDRINUSE", "EINVAL", "EMFILE"]) {
      const f = failing(code);
      expect(() => retryInterrupted(f.call)).toThrow(code);
      expect(f.tries()).toBe(1);
    }
  });

  it("gives up after 100 interrupted tries", () => {
    const f = failing(...Array<string>(150).fill("EINTR"));
    expect(() => retryInterrupted(f.call)).toThrow("EINTR");
    expect(f.tries()).toBe(100);
  });
});

describe("sockets made under a storm of signals (node --cpu-prof every 10 us)", () => {
  const profDir = mkdtempSync(join(tmpdir(), "herald-signals-"));
  afterAll(() => rmSync(profDir, { recursive: true, force: true }));
  const storm = async (mode: string) => {
    const args = ["--cpu-prof", "--cpu-prof-interval", "10", "--cpu-prof-dir", profDir];
    const [out] = await runJsonLines(process.execPath, [
      ...args,
      join(ROOT, "test", "peers", "signal_storm.mjs"),
      mode,
      "2000",
    ]);
    return out as unknown as { done: number; failures: Record<string, number> };
  };

  it("makes raw zeromq.js connects fail with EINTR (the storm reproduces the problem)", {
    timeout: 60_000,
  }, async () => {
    const r = await storm("raw");
    expect(r.done).toBe(2000);
    expect(r.failures["EINTR"] ?? 0).toBeGreaterThan(0);
  });

  it("costs the herald client and the publish and subscribe transports nothing", {
    timeout: 60_000,
  }, async () => {
    for (const mode of ["client", "subscriber", "publisher"]) {
      const r = await storm(mode);
      expect(r.done, mode).toBe(2000);
      expect(r.failures, mode).toEqual({});
    }
  });
});
