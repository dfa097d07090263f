import { describe, expect, it } from "vitest";
import { type HeraldError, MessageRejectedError } from "../src/errors.js";
import { compilePatterns, TopicPattern, topicProblem } from "../src/wire/topic.js";

function refusal(p: unknown): HeraldError {
  try {
    compilePatterns([p as string]);
  } catch (err) {
    return err as HeraldError;
  }
  throw new Error(`pattern ${String(p)} not refused`);
}

describe("subscription patterns that can never match are refused", () => {
  const never: Array<[string, RegExp]> = [
    ["org.example.**", /the word '\*\*': a wildcard must be a whole word/],
    ["a#", /the word 'a#'/],
    ["a.*b.c", /the word '\*b'/],
    ["org example.#", /character U\+0020/],
    ["a\tb", /character U\+0009/],
    ["a..b", /empty word/],
    [".a", /empty word/],
    ["a.", /empty word/],
  ];
  for (const [p, why] of never)
    it(`refuses ${JSON.stringify(p)} saying what is allowed`, () => {
      const err = refusal(p);
      expect(err).toBeInstanceOf(MessageRejectedError);
      expect(err.code).toBe("BAD_TOPIC");
      expect(err.message).toContain(JSON.stringify(p));
      expect(err.message).toMatch(why);
      expect(err.message).toMatch(/'\*' \(exactly one word\) or '#' \(zero or more words\)/);
    });

  it("refuses a pattern that is not a string with a typed error", () => {
    for (const p of [5, null, undefined, ["a"], { a: 1 }]) {
      const err = refusal(p);
      expect(err).toBeInstanceOf(MessageRejectedError);
      expect(err.code).toBe("BAD_TOPIC");
      expect(err.message).toMatch(/^subscription pattern must be a string, got /);
    }
  });

  it("keeps the empty pattern's refusal", () => {
    expect(refusal("").message).toBe("empty subscription pattern: use '#' for everything");
  });

  it("accepts every pattern that can match a valid topic", () => {
    const ok = [
      "#",
      "*",
      "org.example.#",
      "org.*.done",
      "#.done",
      "*.*",
      "a.#.b",
      "org.fedora-project.x_y:z",
      "ü.ok",
    ];
    for (const p of ok) {
      expect(() => new TopicPattern(p), p).not.toThrow();
      const topic = p.replace(/#|\*/g, "w");
      expect(topicProblem(topic), topic).toBeUndefined();
      expect(new TopicPattern(p).matches(topic), p).toBe(true);
    }
    expect(compilePatterns([]).map((p) => p.source)).toEqual(["#"]);
  });
});
