import { describe, expect, it } from "vitest";
import { loadConfigText } from "../src/config/load.js";
import type { ConfigProblem } from "../src/config/problems.js";
import { ConfigError } from "../src/errors.js";

// The yaml package's own texts for these files gave library advice ("please use
// YAML.parseAllDocuments()") or named a stack overflow, not what is wrong with the file.

function problems(text: string): ConfigProblem[] {
  try {
    loadConfigText(text, { file: "/etc/herald/herald.yaml", env: {} });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).details["problems"] as ConfigProblem[];
  }
  throw new Error("the file was accepted");
}

describe("YAML files herald cannot read say why in herald's words", () => {
  it("several documents: says the file holds several and herald reads one, at the second's line", () => {
    for (const text of ["broker:\n  name: a\n---\nbroker:\n  name: b\n", "log:\n  level: info\n---\n"]) {
      const [p, ...rest] = problems(text);
      expect(rest).toEqual([]);
      expect(p).toMatchObject({
        line: 3,
        message:
          "the file holds several YAML documents (a `---` line starts another) and herald reads one: merge them into one, or remove the `---` line",
      });
    }
    expect(() => loadConfigText("---\nlog:\n  level: info\n", { env: {} })).not.toThrow(); // one document
  });

  it("nesting ~1000 deep: names the nesting, in flow and block style", () => {
    let block = "";
    for (let i = 0; i < 1000; i++) block += `${" ".repeat(i)}k:\n`;
    for (const text of [`log: ${"[".repeat(5000)}${"]".repeat(5000)}\n`, block]) {
      const [p] = problems(text);
      expect(p?.message).toMatch(
        /^YAML nests too deep to read \(Maximum call stack size exceeded\): herald's settings nest a few levels; look for brackets or indentation that never close$/,
      );
      expect(p?.line).toBeGreaterThanOrEqual(1);
    }
  });

  it("other syntax errors keep the parser's text", () => {
    expect(problems("broker: [unclosed\n")[0]?.message).toMatch(/^YAML syntax: /);
  });
});
