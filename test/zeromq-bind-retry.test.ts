import { describe, expect, it } from "vitest";
import { bindRetryingEagain } from "../src/util/zeromq.js";

const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });

/** A socket whose binds fail with these codes in turn, then succeed. */
function socketFailing(...codes: string[]) {
  const calls: string[] = [];
  return {
    calls,
    async bind(endpoint: string): Promise<void> {
      calls.push(endpoint);
      const code = codes.shift();
      if (code !== undefined) throw errno(code);
    },
  };
}

describe("bindRetryingEagain", () => {
  it("tries again after EAGAIN, so the real reason (EADDRINUSE) is the one reported", async () => {
    const s = socketFailing("EAGAIN", "EADDRINUSE");
    await expect(bindRetryingEagain(s, "tcp://127.0.0.1:1")).rejects.toMatchObject({ code: "EADDRINUSE" });
    expect(s.calls).toHaveLength(2);
  });

  it("binds when a retry succeeds, and gives up after 3 EAGAINs", async () => {
    const ok = socketFailing("EAGAIN");
    await bindRetryingEagain(ok, "tcp://127.0.0.1:1");
    expect(ok.calls).toHaveLength(2);
    const stuck = socketFailing("EAGAIN", "EAGAIN", "EAGAIN", "EAGAIN");
    await expect(bindRetryingEagain(stuck, "tcp://127.0.0.1:1")).rejects.toMatchObject({ code: "EAGAIN" });
    expect(stuck.calls).toHaveLength(3);
  });

  it("reports any other failure at once", async () => {
    const s = socketFailing("EADDRINUSE");
    await expect(bindRetryingEagain(s, "tcp://127.0.0.1:1")).rejects.toMatchObject({ code: "EADDRINUSE" });
    expect(s.calls).toHaveLength(1);
  });
});
