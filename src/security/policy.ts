import { ConfigError, SecurityError } from "../errors.js";
import { TopicPattern } from "../wire/topic.js";

/** identity name -> topic patterns it may publish (AMQP style: `*` one word, `#` zero or more). */
export type PolicyRules = Record<string, readonly string[]>;

export interface PolicyOptions {
  /** Deny topics that no rule names (fedmsg's `nitpicky`). Default false. */
  strictTopics?: boolean;
}

export type PolicyDecision = { ok: true } | { ok: false; code: "UNAUTHORIZED_TOPIC"; error: SecurityError };

/**
 * Who may publish which topic, checked by the broker after the signature (fedmsg's order).
 *
 * A topic is "named" when any rule's pattern matches it. Then:
 * - named topic: allowed only to identities whose own patterns match it (whatever strictTopics says);
 * - unnamed topic: allowed to everyone (including unsigned submitters) unless strictTopics, then denied.
 * This is fedmsg's routing_policy + nitpicky generalised from literal topics to patterns.
 */
export class TopicPolicy {
  readonly strict: boolean;
  /** Problems found while building the policy (e.g. from a legacy import), for the operator log. */
  readonly warnings: string[];
  private readonly rules: Map<string, TopicPattern[]>;
  private readonly all: TopicPattern[];

  constructor(rules: PolicyRules = {}, opts: PolicyOptions = {}, warnings: string[] = []) {
    this.strict = opts.strictTopics ?? false;
    this.warnings = warnings;
    this.rules = new Map();
    for (const [identity, patterns] of Object.entries(rules)) {
      if (!Array.isArray(patterns))
        throw new ConfigError("CONFIG", `security.policy.${identity} must be a list of topic patterns`);
      this.rules.set(
        identity,
        patterns.map((p) => new TopicPattern(p)),
      );
    }
    this.all = [...this.rules.values()].flat();
  }

  check(identity: string | undefined, topic: string): PolicyDecision {
    const own = identity === undefined ? undefined : this.rules.get(identity);
    if (own?.some((p) => p.matches(topic))) return { ok: true };
    const named = this.all.some((p) => p.matches(topic));
    if (!named && !this.strict) return { ok: true };
    const who = identity === undefined ? "an unsigned submitter" : `identity '${identity}'`;
    const why = named
      ? `the policy reserves it for other identities`
      : `no rule names it and security.strictTopics is on`;
    return {
      ok: false,
      code: "UNAUTHORIZED_TOPIC",
      error: new SecurityError(
        "UNAUTHORIZED_TOPIC",
        `${who} may not publish topic '${topic}': ${why}; add a matching pattern to security.policy${identity === undefined ? "" : `.${identity}`}`,
        { details: { identity: identity ?? null, topic } },
      ),
    };
  }

  /** check(), throwing the SecurityError. */
  assert(identity: string | undefined, topic: string): void {
    const d = this.check(identity, topic);
    if (!d.ok) throw d.error;
  }

  toRules(): PolicyRules {
    return Object.fromEntries([...this.rules].map(([k, v]) => [k, v.map((p) => p.source)]));
  }
}

/** Union of rule sets (e.g. security.policy plus an imported fedmsg routing_policy). */
export function mergeRules(...sets: PolicyRules[]): PolicyRules {
  const out: Record<string, string[]> = {};
  for (const set of sets)
    for (const [id, patterns] of Object.entries(set)) {
      const list = out[id] ?? [];
      for (const p of patterns) if (!list.includes(p)) list.push(p);
      out[id] = list;
    }
  return out;
}

/**
 * Convert fedmsg's `routing_policy` (full topic -> list of cert names) and `certnames`
 * (`<service>.<host>` -> cert name) into a policy. Each cert name becomes an identity, and so does each
 * service name that maps to it, so the policy works whichever name the herald identity was given.
 * `nitpicky` maps to strictTopics.
 */
export function fromLegacyRoutingPolicy(
  routingPolicy: Record<string, unknown>,
  certnames: Record<string, unknown> = {},
  opts: { nitpicky?: boolean } = {},
): TopicPolicy {
  const warnings: string[] = [];
  const servicesByCert = new Map<string, string[]>();
  for (const [service, cert] of Object.entries(certnames)) {
    if (typeof cert !== "string") {
      warnings.push(`certnames['${service}'] is not a string: ignored`);
      continue;
    }
    const list = servicesByCert.get(cert) ?? [];
    list.push(service);
    servicesByCert.set(cert, list);
  }
  const rules: Record<string, string[]> = {};
  const add = (identity: string, topic: string): void => {
    const list = rules[identity] ?? [];
    if (!list.includes(topic)) list.push(topic);
    rules[identity] = list;
  };
  for (const [topic, certs] of Object.entries(routingPolicy)) {
    if (!Array.isArray(certs)) {
      warnings.push(`routing_policy['${topic}'] is not a list of cert names: ignored`);
      continue;
    }
    if (topic.includes("*") || topic.includes("#"))
      warnings.push(
        `routing_policy topic '${topic}' contains a wildcard character: herald reads it as a pattern`,
      );
    for (const cert of certs) {
      if (typeof cert !== "string") {
        warnings.push(`routing_policy['${topic}'] has a non-string entry: ignored`);
        continue;
      }
      add(cert, topic);
      const services = servicesByCert.get(cert);
      if (!services)
        warnings.push(`routing_policy cert '${cert}' is not in certnames: only the cert name is allowed`);
      for (const s of services ?? []) add(s, topic);
    }
    // fedmsg denies a listed topic with an empty list to everyone: reserve it for nobody.
    if (certs.length === 0) add("\u0000nobody", topic);
  }
  return new TopicPolicy(rules, { strictTopics: opts.nitpicky ?? false }, warnings);
}
