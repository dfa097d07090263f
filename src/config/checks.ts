/**
 * Checks across keys, or deeper than the schema's patterns, that need only the merged document: what
 * `herald serve`, the shim or a client would otherwise find only when they start, with a stack trace
 * or a misleading timeout instead of the key's file:line.
 */
import { amqpUrlProblem, redactUrl } from "../util/amqp-url.js";
import { endpointProblem, listenAddress } from "./endpoints.js";
import type { ConfigProblem } from "./problems.js";
import { formatSize, parseSize } from "./units.js";
import { describeValue, type Locator, listItems } from "./validate.js";
import { dotted, isPlainObject, type KeyPath } from "./walk.js";

type Found = Array<[KeyPath, unknown]>;

const section = (doc: Record<string, unknown>, key: string): Record<string, unknown> => {
  const value = doc[key];
  return isPlainObject(value) ? value : {};
};

/** The legacy: section's fedmsg endpoints, which the shim connects to or binds on a reload. */
function legacyEndpoints(doc: Record<string, unknown>): Found {
  const legacy = section(doc, "legacy");
  const services = isPlainObject(legacy["services"]) ? legacy["services"] : {};
  const found: Found = [[["legacy", "relayInbound"], legacy["relayInbound"]]];
  for (const [name, svc] of Object.entries(services)) {
    const eps = isPlainObject(svc) ? svc["endpoints"] : undefined;
    found.push(...listItems(eps, ["legacy", "services", name, "endpoints"]));
  }
  return found;
}

/** The broker's own endpoints: submit, PUB sockets, and the sinks that have one (not AMQP's url). */
function brokerEndpoints(doc: Record<string, unknown>): Found {
  const broker = section(doc, "broker");
  const submit = isPlainObject(broker["submit"]) ? broker["submit"] : {};
  const found: Found = [...listItems(submit["tcp"], ["broker", "submit", "tcp"])];
  const items = [
    ...listItems(broker["publish"], ["broker", "publish"]),
    ...listItems(doc["sinks"], ["sinks"]),
  ];
  for (const [path, item] of items) {
    if (isPlainObject(item) && item["type"] !== "amqp") found.push([[...path, "endpoint"], item["endpoint"]]);
  }
  return found;
}

/**
 * Endpoints must be usable as written: tcp://host:port with a port 1-65535, or ipc://path. libzmq
 * would take tcp://h:99999 as port 34463, and fail a tcp:// without a port only when binding.
 * `skip` holds the key paths the schema already refused (one problem per key).
 */
export function checkEndpoints(
  doc: Record<string, unknown>,
  locate: Locator,
  skip: ReadonlySet<string> = new Set(),
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [path, ep] of [...brokerEndpoints(doc), ...legacyEndpoints(doc)]) {
    const problem = typeof ep === "string" ? endpointProblem(ep) : undefined;
    if (problem === undefined || skip.has(dotted(path))) continue;
    problems.push({
      path: dotted(path),
      ...locate(path, "value"),
      message: `${JSON.stringify(ep)}: ${problem}`,
    });
  }
  return [...problems, ...metricsProblems(doc, locate), ...amqpUrlProblems(doc, locate, skip)];
}

/**
 * sinks[].url and sources[].url of AMQP entries must parse as URLs: the schema's pattern takes
 * "amqp://[::", which `herald serve` would then retry connecting to forever ("Invalid URL").
 */
function amqpUrlProblems(
  doc: Record<string, unknown>,
  locate: Locator,
  skip: ReadonlySet<string>,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [path, item] of [
    ...listItems(doc["sinks"], ["sinks"]),
    ...listItems(doc["sources"], ["sources"]),
  ]) {
    if (!isPlainObject(item) || item["type"] !== "amqp" || typeof item["url"] !== "string") continue;
    const at: KeyPath = [...path, "url"];
    const problem = amqpUrlProblem(item["url"]);
    if (problem !== undefined && !skip.has(dotted(at)))
      problems.push(problemAt(at, locate, `${JSON.stringify(redactUrl(item["url"]))}: ${problem}`));
  }
  return problems;
}

/** broker.metrics: null (off) or HOST:PORT that node:http can listen on (broker/metrics.ts). */
function metricsProblems(doc: Record<string, unknown>, locate: Locator): ConfigProblem[] {
  const value = section(doc, "broker")["metrics"] ?? null;
  if (value === null) return [];
  const parsed = listenAddress(value);
  if (!("problem" in parsed)) return [];
  const shown = typeof value === "string" ? JSON.stringify(value) : describeValue(value);
  return [problemAt(["broker", "metrics"], locate, `${shown}: ${parsed.problem}`)];
}

function problemAt(path: KeyPath, locate: Locator, message: string): ConfigProblem {
  return { path: dotted(path), ...locate(path, "value"), message };
}

/** security: CURVE needs our key pair, and forwarders are told apart by CURVE (broker/from-config.ts). */
function securityProblems(doc: Record<string, unknown>, locate: Locator): ConfigProblem[] {
  const s = section(doc, "security");
  const problems: ConfigProblem[] = [];
  if (s["curve"] === true && s["identity"] === null)
    problems.push(
      problemAt(
        ["security", "curve"],
        locate,
        "security.curve is true but security.identity is null: generate a key pair ('herald keys generate NAME') and set security.identity: NAME, or set curve: false",
      ),
    );
  if (Array.isArray(s["forwarders"]) && s["forwarders"].length > 0 && s["curve"] !== true)
    problems.push(
      problemAt(
        ["security", "forwarders"],
        locate,
        "security.forwarders names CURVE identities, but security.curve is false: set security.curve: true (forwarders authenticate with CURVE), or remove security.forwarders",
      ),
    );
  return problems;
}

/** A forward sink with a serverKey speaks CURVE as security.identity, so it needs one. */
function forwardProblems(doc: Record<string, unknown>, locate: Locator): ConfigProblem[] {
  if (section(doc, "security")["identity"] !== null) return [];
  return listItems(doc["sinks"], ["sinks"])
    .filter(
      ([, item]) =>
        isPlainObject(item) && item["type"] === "forward" && typeof item["serverKey"] === "string",
    )
    .map(([path]) =>
      problemAt(
        [...path, "serverKey"],
        locate,
        "a serverKey (forward over CURVE) needs this broker's key pair, but security.identity is null: set security.identity, or remove serverKey",
      ),
    );
}

/**
 * An enabled shim takes a service's endpoints from legacy.services, else from the fedmsg config; with
 * no legacy.config there is none. (Whether legacy.config lists the service is known only once it is
 * read: the shim still checks that when it starts or reloads.)
 */
function legacyProblems(doc: Record<string, unknown>, locate: Locator): ConfigProblem[] {
  const legacy = section(doc, "legacy");
  if (legacy["enabled"] !== true || legacy["config"] !== null) return [];
  const services = isPlainObject(legacy["services"]) ? legacy["services"] : {};
  return Object.entries(services)
    .filter(([, svc]) => isPlainObject(svc) && (svc["endpoints"] ?? null) === null)
    .map(([name]) =>
      problemAt(
        ["legacy", "services", name],
        locate,
        `no endpoints, and no fedmsg config to take them from (legacy.config is null): add endpoints: [...] to the service, or set legacy.config to /etc/fedmsg.d`,
      ),
    );
}

/** A size as written (the schema reports one that does not parse), in bytes. */
function bytesOf(value: unknown): number | undefined {
  try {
    return parseSize(value);
  } catch {
    return undefined;
  }
}

/** A message the broker accepts must fit in the outbox: else it is refused TOO_LARGE only once accepted. */
function outboxProblems(doc: Record<string, unknown>, locate: Locator): ConfigProblem[] {
  const outbox = bytesOf(section(doc, "outbox")["maxBytes"]);
  const body = bytesOf(section(doc, "limits")["maxBodyBytes"]);
  if (outbox === undefined || body === undefined || outbox >= body) return [];
  return [
    problemAt(
      ["outbox", "maxBytes"],
      locate,
      `outbox.maxBytes (${formatSize(outbox)}) is smaller than limits.maxBodyBytes (${formatSize(body)}): a message the broker accepts could never be stored. Fix: raise outbox.maxBytes (it bounds the whole undelivered backlog: keep it far above limits.maxBodyBytes), or lower limits.maxBodyBytes`,
    ),
  ];
}

/** Keys that are valid alone but not together; `herald serve` and the shim check them again at start. */
export function checkCrossKeys(doc: Record<string, unknown>, locate: Locator): ConfigProblem[] {
  return [
    ...securityProblems(doc, locate),
    ...forwardProblems(doc, locate),
    ...legacyProblems(doc, locate),
    ...outboxProblems(doc, locate),
  ];
}
