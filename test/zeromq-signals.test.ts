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

  it("fail with EINTR in raw zeromq.js and never in the herald client or its transports", {
    timeout: 240_000,
  }, async () => {
    const prof = ["--cpu-prof", "--cpu-prof-interval", "10", "--cpu-prof-dir", profDir];
    const storm = join(ROOT, "test", "peers", "signal_storm.mjs");
    const [out] = await runJsonLines(process.execPath, [...prof, storm, "500", "40"]);
    const r = out as unknown as {
      rounds: number;
      done: Record<string, number>;
      failures: Record<string, Record<string, number>>;
    };
    // The storm reproduces the problem: raw connects were interrupted in this very run.
    expect(r.failures["raw"]?.["EINTR"] ?? 0).toBeGreaterThan(0);
    for (const mode of ["client", "subscriber", "publisher"]) {
      expect(r.done[mode], mode).toBe(r.rounds * 500);
      expect(r.failures[mode], mode).toEqual({});
    }
  });
});
