import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type MatchSteps, TopicPattern } from "../src/wire/topic.js";

// Topic matching runs per message per subscription, and for every policy pattern on every submission. A
// pattern with several `#` must not make it cost O(words^k): the work is counted in steps (not timed), and
// the result must stay what the old backtracking matcher (kept here as the reference) said.

/** The matcher as it was: try every split for each `#`. Correct, but exponential in the number of `#`. */
function reference(p: readonly string[], pi: number, t: readonly string[], ti: number): boolean {
  while (pi < p.length) {
    const w = p[pi]!;
    if (w === "#") {
      if (pi === p.length - 1) return true;
      for (let k = ti; k <= t.length; k++) if (reference(p, pi + 1, t, k)) return true;
      return false;
    }
    if (ti >= t.length) return false;
    if (w !== "*" && w !== t[ti]) return false;
    pi++;
    ti++;
  }
  return ti === t.length;
}

const word = fc.constantFrom("a", "b", "c");
const patternWord = fc.constantFrom("a", "b", "c", "*", "#", "#");

describe("topic pattern matching cost", () => {
  it("agrees with the backtracking reference on every pattern and topic (property)", () => {
    fc.assert(
      fc.property(
        fc.array(patternWord, { minLength: 1, maxLength: 8 }),
        fc.array(word, { minLength: 1, maxLength: 10 }),
        (pw, tw) => {
          const expected = reference(pw, 0, tw, 0);
          expect(new TopicPattern(pw.join(".")).matches(tw.join("."))).toBe(expected);
        },
      ),
      { numRuns: 5000 },
    );
  });

  it("takes at most words x pattern words steps for patterns full of '#' against a 128-word topic", () => {
    const long = Array(128).fill("a").join(".");
    const words = 128;
    for (const [pattern, matched] of [
      ["#.#.#.#.b", false],
      ["#.a.#.a.#.b", false],
      ["#.*.#.*.#.*.b", false],
      ["#.a.#.a.#.a", true],
      [`${Array(40).fill("#").join(".")}.a.b`, false],
    ] as const) {
      const steps: MatchSteps = { n: 0 };
      expect(new TopicPattern(pattern).matches(long, steps)).toBe(matched);
      const patternWords = pattern.split(".").length;
      // The backtracking matcher took ~10^7 steps for #.#.#.#.b here; this bound is 128 x 6 = 768.
      expect(steps.n).toBeGreaterThan(0);
      expect(steps.n).toBeLessThanOrEqual((words + 1) * (patternWords + 1));
    }
  });

  it("repeated '#' are collapsed: '#.#.#.b' costs what '#.b' costs, and keeps its source and prefix", () => {
    const topic = Array(100).fill("a").join(".");
    const cost = (p: string): number => {
      const steps: MatchSteps = { n: 0 };
      new TopicPattern(p).matches(topic, steps);
      return steps.n;
    };
    expect(cost("#.#.#.b")).toBe(cost("#.b"));
    expect(cost("org.#.#.x.#.#")).toBe(cost("org.#.x.#"));
    const p = new TopicPattern("org.#.#.b");
    expect(p.source).toBe("org.#.#.b");
    expect(p.prefixOf()).toBe("org");
    expect(p.matches("org.b")).toBe(true);
    expect(p.matches("org.x.y.b")).toBe(true);
  });
});
