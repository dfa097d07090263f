import { describe, expect, it } from "vitest";
import type { AmqpLogLevel } from "../src/transport/amqp-options.js";
import { unroutableNotices } from "../src/transport/amqp-refusals.js";

describe("unroutable returns in the log", () => {
  it("logs a burst per window and counts the rest into the next line", () => {
    const lines: Array<[AmqpLogLevel, string]> = [];
    let t = 1_000;
    const note = unroutableNotices((level, message) => lines.push([level, message]), {
      burst: 3,
      intervalMs: 60_000,
      now: () => t,
    });
    for (let i = 0; i < 100; i++) note(`unroutable: message ${i}`);
    expect(lines.map(([, m]) => m)).toEqual([
      "unroutable: message 0",
      "unroutable: message 1",
      "unroutable: message 2",
    ]);
    expect(lines.every(([l]) => l === "warn")).toBe(true);
    t += 59_999;
    note("unroutable: message 100");
    expect(lines).toHaveLength(3);
    t += 1;
    note("unroutable: message 101");
    expect(lines[3]?.[1]).toBe("unroutable: message 101 (and 98 more returned since the last such line)");
    note("unroutable: message 102");
    expect(lines[4]?.[1]).toBe("unroutable: message 102");
  });
});
