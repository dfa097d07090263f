import { describe, expect, it } from "vitest";
import { SecurityError } from "../src/errors.js";
import { fromLegacyRoutingPolicy, mergeRules, TopicPolicy } from "../src/security/index.js";

const rules = {
  bodhi: ["org.fedoraproject.*.bodhi.#"],
  koji: ["org.fedoraproject.*.buildsys.#", "org.fedoraproject.prod.bodhi.update.komment"],
};

const verdict = (p: TopicPolicy, id: string | undefined, topic: string): string => {
  const d = p.check(id, topic);
  return d.ok ? "allow" : d.code;
};

describe("TopicPolicy", () => {
  it("named topics only for identities whose patterns match; unnamed topics open when not strict", () => {
    const p = new TopicPolicy(rules);
    expect(verdict(p, "bodhi", "org.fedoraproject.prod.bodhi.update.request")).toBe("allow");
    expect(verdict(p, "koji", "org.fedoraproject.prod.bodhi.update.request")).toBe("UNAUTHORIZED_TOPIC");
    expect(verdict(p, undefined, "org.fedoraproject.prod.bodhi.update.request")).toBe("UNAUTHORIZED_TOPIC");
    expect(verdict(p, "koji", "org.fedoraproject.prod.bodhi.update.komment")).toBe("allow");
    expect(verdict(p, "bodhi", "org.fedoraproject.prod.bodhi.update.komment")).toBe("allow");
    expect(verdict(p, "bodhi", "org.fedoraproject.prod.buildsys.tag")).toBe("UNAUTHORIZED_TOPIC");
    // Named by nobody: open to anyone, including unknown identities and unsigned submitters.
    expect(verdict(p, "bodhi", "org.fedoraproject.prod.wiki.edit")).toBe("allow");
    expect(verdict(p, "nobody-known", "org.fedoraproject.prod.wiki.edit")).toBe("allow");
    expect(verdict(p, undefined, "org.fedoraproject.prod.wiki.edit")).toBe("allow");
  });

  it("strict mode denies topics no rule names, with a message naming the fix", () => {
    const p = new TopicPolicy(rules, { strictTopics: true });
    expect(verdict(p, "bodhi", "org.fedoraproject.stg.bodhi.x")).toBe("allow");
    const d = p.check("bodhi", "org.fedoraproject.prod.wiki.edit");
    expect(d.ok).toBe(false);
    if (!d.ok) {
      expect(d.error).toBeInstanceOf(SecurityError);
      expect(d.error.message).toMatch(/strictTopics.*security\.policy\.bodhi/);
    }
    expect(() => p.assert(undefined, "a.b")).toThrow(/unsigned submitter/);
    expect(verdict(new TopicPolicy({}, { strictTopics: true }), "x", "a.b")).toBe("UNAUTHORIZED_TOPIC");
    expect(verdict(new TopicPolicy({}), "x", "a.b")).toBe("allow");
  });

  it("'#' for one identity reserves every topic for it", () => {
    const p = new TopicPolicy({ root: ["#"], bodhi: ["a.#"] });
    expect(verdict(p, "root", "z.y")).toBe("allow");
    expect(verdict(p, "bodhi", "z.y")).toBe("UNAUTHORIZED_TOPIC");
    expect(verdict(p, "bodhi", "a.b")).toBe("allow");
  });

  it("mergeRules unions pattern lists", () => {
    expect(mergeRules({ a: ["x.#"] }, { a: ["x.#", "y"], b: ["z"] })).toEqual({ a: ["x.#", "y"], b: ["z"] });
    expect(new TopicPolicy(rules).toRules()).toEqual(rules);
  });
});

describe("fromLegacyRoutingPolicy", () => {
  const routing = {
    "org.fedoraproject.prod.bodhi.update.request": ["bodhi-bodhi01.phx2.fedoraproject.org"],
    "org.fedoraproject.prod.buildsys.build.state.change": [
      "buildsys-koji01.phx2.fedoraproject.org",
      "buildsys-koji02.phx2.fedoraproject.org",
    ],
    "org.fedoraproject.prod.locked.nobody": [],
  };
  const certnames = {
    "bodhi.bodhi01": "bodhi-bodhi01.phx2.fedoraproject.org",
    "bodhi.bodhi01b": "bodhi-bodhi01.phx2.fedoraproject.org",
    "buildsys.koji01": "buildsys-koji01.phx2.fedoraproject.org",
  };

  it("converts cert names to identities (cert name and every service name mapping to it)", () => {
    const p = fromLegacyRoutingPolicy(routing, certnames);
    const t = "org.fedoraproject.prod.bodhi.update.request";
    for (const id of ["bodhi-bodhi01.phx2.fedoraproject.org", "bodhi.bodhi01", "bodhi.bodhi01b"])
      expect(verdict(p, id, t)).toBe("allow");
    expect(verdict(p, "buildsys.koji01", t)).toBe("UNAUTHORIZED_TOPIC");
    const b = "org.fedoraproject.prod.buildsys.build.state.change";
    expect(verdict(p, "buildsys.koji01", b)).toBe("allow");
    expect(verdict(p, "buildsys-koji02.phx2.fedoraproject.org", b)).toBe("allow");
    expect(p.warnings.join("\n")).toMatch(/buildsys-koji02.*not in certnames/);
    // fedmsg semantics: a listed topic with nobody allowed is denied to all; unlisted topics are open.
    expect(verdict(p, "bodhi.bodhi01", "org.fedoraproject.prod.locked.nobody")).toBe("UNAUTHORIZED_TOPIC");
    expect(verdict(p, "bodhi.bodhi01", "org.fedoraproject.prod.other.thing")).toBe("allow");
    // A literal topic does not match longer topics.
    expect(verdict(p, "buildsys.koji01", `${t}.more`)).toBe("allow");
  });

  it("nitpicky maps to strictTopics; bad entries become warnings, not crashes", () => {
    const p = fromLegacyRoutingPolicy(
      { ...routing, "x.y": "not-a-list", "x.z": [3] },
      { a: 5 },
      { nitpicky: true },
    );
    expect(p.strict).toBe(true);
    expect(verdict(p, "bodhi.bodhi01", "org.fedoraproject.prod.other.thing")).toBe("UNAUTHORIZED_TOPIC");
    expect(p.warnings.length).toBeGreaterThanOrEqual(3);
  });
});
