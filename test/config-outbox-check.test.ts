/** outbox.maxBytes below limits.maxBodyBytes is refused at load: such a message could never be stored. */
import { describe, expect, it } from "vitest";
import { type ConfigProblem, loadConfigText } from "../src/config/index.js";
import { ConfigError } from "../src/errors.js";

const MACHINE = { uid: 1000, homedir: "/home/ada", hostname: "host-a" };

function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): ConfigProblem[] {
  try {
    loadConfigText(text, { file: "/etc/herald/herald.yaml", env, machine: MACHINE });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return ((err as ConfigError).details["problems"] ?? []) as ConfigProblem[];
  }
  return [];
}

describe("config: outbox.maxBytes against limits.maxBodyBytes", () => {
  it("refuses an outbox smaller than the largest accepted message, at the key, naming both", () => {
    const problems = problemsOf("outbox:\n  maxBytes: 64KiB\n");
    expect(problems).toMatchObject([{ path: "outbox.maxBytes", line: 2 }]);
    expect(problems[0]?.message).toContain("64KiB");
    expect(problems[0]?.message).toContain("limits.maxBodyBytes (1MiB)");
  });

  it("checks values from the environment too, and accepts equal or larger", () => {
    expect(problemsOf("", { HERALD_LIMITS__MAX_BODY_BYTES: "2GiB" })).toMatchObject([
      { path: "outbox.maxBytes" },
    ]);
    expect(problemsOf("outbox:\n  maxBytes: 1MiB\n")).toEqual([]);
    expect(problemsOf("limits:\n  maxBodyBytes: 64KiB\noutbox:\n  maxBytes: 64KiB\n")).toEqual([]);
  });

  it("leaves a size that does not parse to the schema's own problem", () => {
    const problems = problemsOf("outbox:\n  maxBytes: lots\n");
    expect(problems.map((p) => p.path)).toEqual(["outbox.maxBytes"]);
    expect(problems[0]?.message).not.toContain("limits.maxBodyBytes");
  });
});
