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
    if (pattern.length === 0)
      throw rejected("BAD_TOPIC", "empty subscription pattern: use '#' for everything");
    this.source = pattern;
    this.words = pattern.split(".");
  }

  matches(topic: string): boolean {
    return matchWords(this.words, 0, topic.split("."), 0);
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

function matchWords(p: readonly string[], pi: number, t: readonly string[], ti: number): boolean {
  while (pi < p.length) {
    const w = p[pi]!;
    if (w === "#") {
      if (pi === p.length - 1) return true;
      for (let k = ti; k <= t.length; k++) if (matchWords(p, pi + 1, t, k)) return true;
      return false;
    }
    if (ti >= t.length) return false;
    if (w !== "*" && w !== t[ti]) return false;
    pi++;
    ti++;
  }
  return ti === t.length;
}

export function compilePatterns(patterns: readonly string[]): TopicPattern[] {
  return (patterns.length === 0 ? ["#"] : patterns).map((p) => new TopicPattern(p));
}

export function matchesAny(patterns: readonly TopicPattern[], topic: string): boolean {
  return patterns.some((p) => p.matches(topic));
}
