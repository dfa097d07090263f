import { rejected } from "../errors.js";

/** AMQP routing keys are shortstr: 255 bytes at most. */
export const MAX_TOPIC_BYTES = 255;

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point.
const FORBIDDEN = /[\u0000-\u001f\u007f*#\s]/u;

/** Why a topic is not acceptable, or undefined when it is. */
export function topicProblem(topic: unknown): string | undefined {
  if (typeof topic !== "string") return "topic must be a string";
  if (topic.length === 0) return "topic is empty";
  if (!topic.isWellFormed()) return "topic is not valid UTF-8 (lone surrogate)";
  const bytes = Buffer.byteLength(topic, "utf8");
  if (bytes > MAX_TOPIC_BYTES) return `topic is ${bytes} bytes, the limit is ${MAX_TOPIC_BYTES}`;
  const bad = FORBIDDEN.exec(topic);
  if (bad) {
    const c = bad[0].codePointAt(0)!;
    return `topic contains ${bad[0] === "*" || bad[0] === "#" ? `the wildcard '${bad[0]}'` : `character U+${c.toString(16).padStart(4, "0")}`}: published topics are plain dot-separated words`;
  }
  // Every published message passes here: no array of words per topic.
  if (topic.startsWith(".") || topic.endsWith(".") || topic.includes(".."))
    return "topic has an empty word (leading, trailing or double dot)";
  return undefined;
}

export function assertTopic(topic: unknown): asserts topic is string {
  const problem = topicProblem(topic);
  if (problem) throw rejected("BAD_TOPIC", `${problem} (got ${JSON.stringify(String(topic)).slice(0, 80)})`);
}

/**
 * A subscription pattern with AMQP topic-exchange rules: words separated by dots, `*` matches exactly
 * one word, `#` matches zero or more words. ZeroMQ can only filter by byte prefix, so subscribers use
 * `prefixOf` for the socket filter and `matches` for the exact decision.
 */
export class TopicPattern {
  readonly source: string;
  private readonly words: readonly string[];

  constructor(pattern: string) {
    const problem = patternProblem(pattern);
    if (problem !== undefined) throw rejected("BAD_TOPIC", problem, { pattern: String(pattern) });
    this.source = pattern;
    // `#.#` matches exactly what `#` does: collapsed, so repeated `#` cost nothing at match time.
    this.words = pattern.split(".").filter((w, i, all) => w !== "#" || all[i - 1] !== "#");
  }

  /** `steps`, for tests and benchmarks, counts the matcher's steps (bounded by words x pattern words). */
  matches(topic: string, steps?: MatchSteps): boolean {
    return matchWords(this.words, topic.split("."), steps);
  }

  /** The longest literal prefix, usable as a ZeroMQ SUBSCRIBE filter. */
  prefixOf(): string {
    const out: string[] = [];
    for (const w of this.words) {
      // `*` needs one more word (so "a." is safe), `#` may match zero words ("a.#" matches "a").
      if (w === "#") return out.join(".");
      if (w === "*") return out.length === 0 ? "" : `${out.join(".")}.`;
      out.push(w);
    }
    // A fully literal pattern: the exact topic is a prefix of itself (and of longer topics; matches() decides).
    return out.join(".");
  }
}

const PATTERN_RULE =
  "patterns are dot-separated words, each a literal topic word, '*' (exactly one word) or '#' (zero or more words), e.g. 'org.example.*.done' or 'org.example.#'";

/**
 * Why a subscription pattern can never match a topic herald accepts (topicProblem), or undefined. Wildcards
 * are whole words: `a#`, `**` and `a..b` match nothing, and a space or control character cannot be in any
 * topic; refused rather than left to deliver nothing.
 */
export function patternProblem(pattern: unknown): string | undefined {
  if (typeof pattern !== "string")
    return `subscription pattern must be a string, got ${pattern === null ? "null" : Array.isArray(pattern) ? "a list" : `a ${typeof pattern}`}: ${PATTERN_RULE}`;
  if (pattern.length === 0) return "empty subscription pattern: use '#' for everything";
  const shown = JSON.stringify(pattern.length > 80 ? `${pattern.slice(0, 80)}...` : pattern);
  if (!pattern.isWellFormed()) return `subscription pattern ${shown} is not valid UTF-8 (lone surrogate)`;
  for (const w of pattern.split(".")) {
    if (w === "*" || w === "#") continue;
    if (w.length === 0)
      return `subscription pattern ${shown} has an empty word (leading, trailing or double dot): ${PATTERN_RULE}`;
    const bad = FORBIDDEN.exec(w);
    if (bad) {
      const what =
        bad[0] === "*" || bad[0] === "#"
          ? `the word '${w}': a wildcard must be a whole word`
          : `the character U+${bad[0].codePointAt(0)!.toString(16).padStart(4, "0")}, which no topic holds`;
      return `subscription pattern ${shown} has ${what}; ${PATTERN_RULE}`;
    }
  }
  return undefined;
}

/** A step counter for `matchWords` (tests and benchmarks only). */
export interface MatchSteps {
  n: number;
}

/**
 * Does the word list `t` match pattern `p`? `*` is one word, `#` zero or more. Greedy, with one backtrack
 * point: the last `#` seen. When a word fails, that `#` takes one more topic word and matching resumes
 * right after it. An earlier `#` never needs another try, because the last one can take whatever words
 * the earlier one would have (the classic wildcard algorithm). So at most about |t| x |p| steps, whatever
 * the pattern: recursing into every split for each `#` cost O(|t|^k) for k of them, 70 ms per message for
 * `#.#.#.#.b` against a 128-word topic, which any submitter could make a policy pattern pay.
 */
function matchWords(p: readonly string[], t: readonly string[], steps?: MatchSteps): boolean {
  let pi = 0;
  let ti = 0;
  let star = -1; // index of the last `#` seen
  let resume = 0; // topic index the last `#` matched up to
  while (ti < t.length) {
    if (steps) steps.n++;
    const w = p[pi];
    if (w === "#") {
      if (pi === p.length - 1) return true; // a final `#` takes all the rest
      star = pi++;
      resume = ti;
    } else if (w !== undefined && (w === "*" || w === t[ti])) {
      pi++;
      ti++;
    } else if (star >= 0) {
      pi = star + 1;
      ti = ++resume;
    } else return false;
  }
  while (p[pi] === "#") pi++; // trailing `#` match zero words
  return pi === p.length;
}

export function compilePatterns(patterns: readonly string[]): TopicPattern[] {
  return (patterns.length === 0 ? ["#"] : patterns).map((p) => new TopicPattern(p));
}

export function matchesAny(patterns: readonly TopicPattern[], topic: string): boolean {
  return patterns.some((p) => p.matches(topic));
}
