import { endpointProblem } from "../../config/endpoints.js";
import { type Evaluation, isJsonObject, type Json, type LegacyConfig, legacyError } from "./types.js";

/** fedmsg's defaults for the keys herald reads. */
const DEFAULT_PREFIX = "org.fedoraproject";
const DEFAULT_ENVIRONMENT = "dev";
const KNOWN_ENVIRONMENTS = new Set(["prod", "stg", "dev"]);

export { endpointProblem };

interface Ctx {
  ev: Evaluation;
  configPath: string;
  warnings: string[];
}

function fileOf(ctx: Ctx, key: string): string {
  const origins = ctx.ev.origins;
  const top = key.split(".")[0] ?? "";
  if (Object.hasOwn(origins, key)) return origins[key]!;
  return Object.hasOwn(origins, top) ? origins[top]! : ctx.configPath;
}

function typeName(v: Json | undefined): string {
  if (v === null) return "None";
  if (Array.isArray(v)) return "list";
  if (typeof v === "object") return "dict";
  return typeof v === "number"
    ? Number.isInteger(v)
      ? "int"
      : "float"
    : typeof v === "boolean"
      ? "bool"
      : "str";
}

function wrongType(ctx: Ctx, key: string, want: string, got: Json | undefined): Error {
  return legacyError(`\`${key}\` must be ${want}, got ${typeName(got)}; fix that value in the file`, {
    file: fileOf(ctx, key),
  });
}

function endpointsOf(ctx: Ctx): Record<string, string[]> {
  const raw = ctx.ev.config["endpoints"];
  if (raw === undefined) {
    ctx.warnings.push("no `endpoints` defined: there is nothing to subscribe to or bridge");
    return {};
  }
  if (!isJsonObject(raw))
    throw wrongType(ctx, "endpoints", "a dict of service name -> list of endpoints", raw);
  const out: Record<string, string[]> = {};
  const seen = new Map<string, string>();
  for (const [service, value] of Object.entries(raw)) {
    // fedmsg's iterate(): a bare string is a one-element list.
    const list = typeof value === "string" ? [value] : value;
    const key = `endpoints.${service}`;
    if (!Array.isArray(list)) throw wrongType(ctx, key, "a list of endpoint strings", value);
    const endpoints: string[] = [];
    for (const ep of list) {
      if (typeof ep !== "string") throw wrongType(ctx, `${key}[]`, "a string", ep);
      const problem = endpointProblem(ep);
      if (problem) {
        throw legacyError(
          `endpoint ${JSON.stringify(ep)} of service ${service}: ${problem}; fix the endpoint`,
          {
            file: fileOf(ctx, key),
          },
        );
      }
      const other = seen.get(ep);
      if (other === service) ctx.warnings.push(`endpoint ${ep} is listed twice for ${service}`);
      else if (other !== undefined)
        ctx.warnings.push(`endpoint ${ep} is listed for both ${other} and ${service}`);
      seen.set(ep, service);
      endpoints.push(ep);
    }
    if (endpoints.length === 0) ctx.warnings.push(`service ${service} has no endpoints`);
    Object.defineProperty(out, service, {
      value: endpoints,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function relayInboundOf(ctx: Ctx): string | undefined {
  const raw = ctx.ev.config["relay_inbound"];
  if (raw === undefined || raw === null) return undefined;
  const list = typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(list) || list.some((x) => typeof x !== "string")) {
    throw wrongType(ctx, "relay_inbound", "an endpoint string or a list of them", raw);
  }
  const [first, ...rest] = list as string[];
  if (first === undefined) {
    ctx.warnings.push("relay_inbound is an empty list: active publishers have nowhere to connect");
    return undefined;
  }
  const problem = endpointProblem(first);
  if (problem) {
    throw legacyError(`relay_inbound ${JSON.stringify(first)}: ${problem}; fix the endpoint`, {
      file: fileOf(ctx, "relay_inbound"),
    });
  }
  if (rest.length > 0)
    ctx.warnings.push(
      `relay_inbound lists ${list.length} endpoints; using ${first}, ignoring ${rest.join(", ")}`,
    );
  return first;
}

function stringOf(ctx: Ctx, key: string, fallback: string): string {
  const v = ctx.ev.config[key];
  if (v === undefined) return fallback;
  if (typeof v !== "string") throw wrongType(ctx, key, "a string", v);
  return v;
}

function optional<T>(ctx: Ctx, key: string, want: string, test: (v: Json) => v is Json & T): T | undefined {
  const v = ctx.ev.config[key];
  if (v === undefined || v === null) return undefined;
  if (!test(v)) throw wrongType(ctx, key, want, v);
  return v;
}

const isBool = (v: Json): v is boolean => typeof v === "boolean";
const isInt = (v: Json): v is number => typeof v === "number" && Number.isInteger(v);
const isStr = (v: Json): v is string => typeof v === "string";

function routingPolicyOf(ctx: Ctx): Record<string, string[]> {
  const raw = optional(ctx, "routing_policy", "a dict of topic -> list of cert names", isJsonObject) ?? {};
  const out: Record<string, string[]> = {};
  for (const [topic, names] of Object.entries(raw)) {
    if (!Array.isArray(names) || names.some((n) => typeof n !== "string")) {
      throw wrongType(ctx, `routing_policy.${topic}`, "a list of cert names", names);
    }
    Object.defineProperty(out, topic, { value: names, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function certnamesOf(ctx: Ctx): Record<string, string> {
  const raw = optional(ctx, "certnames", "a dict of service -> cert name", isJsonObject) ?? {};
  const out: Record<string, string> = {};
  for (const [service, name] of Object.entries(raw)) {
    if (typeof name !== "string") throw wrongType(ctx, `certnames.${service}`, "a string", name);
    Object.defineProperty(out, service, {
      value: name,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

function zmqOf(ctx: Ctx): Record<string, number | boolean> {
  const out: Record<string, number | boolean> = {};
  for (const [key, value] of Object.entries(ctx.ev.config)) {
    if (!key.startsWith("zmq_")) continue;
    if (typeof value === "number" || typeof value === "boolean") out[key] = value;
    else ctx.warnings.push(`${key} is ${typeName(value)}, not a number or bool; ignored`);
  }
  return out;
}

/** Turn an evaluated, merged config dict into the typed LegacyConfig herald uses. */
export function normalizeLegacy(
  ev: Evaluation,
  evaluator: LegacyConfig["evaluator"],
  configPath: string,
  warnings: string[] = [],
): LegacyConfig {
  const ctx: Ctx = { ev, configPath, warnings };
  for (const f of ev.withoutConfig) warnings.push(`${f} defines no \`config\` dict; it contributes nothing`);
  for (const d of ev.dropped) warnings.push(`${d.file}: ${d.path} (${d.type}) is not JSON; ${d.action}`);
  const environment = stringOf(ctx, "environment", DEFAULT_ENVIRONMENT);
  if (!KNOWN_ENVIRONMENTS.has(environment))
    warnings.push(`environment ${JSON.stringify(environment)} is not prod, stg or dev`);
  const cfg: LegacyConfig = {
    raw: ev.config,
    files: ev.files,
    evaluator,
    endpoints: endpointsOf(ctx),
    topicPrefix: stringOf(ctx, "topic_prefix", DEFAULT_PREFIX),
    environment,
    routingPolicy: routingPolicyOf(ctx),
    certnames: certnamesOf(ctx),
    routingNitpicky: optional(ctx, "routing_nitpicky", "a bool", isBool) ?? false,
    zmq: zmqOf(ctx),
    warnings,
  };
  const relay = relayInboundOf(ctx);
  if (relay !== undefined) cfg.relayInbound = relay;
  const active = optional(ctx, "active", "a bool", isBool);
  if (active !== undefined) cfg.active = active;
  const name = optional(ctx, "name", "a string", isStr);
  if (name !== undefined) cfg.name = name;
  const hwm = optional(ctx, "high_water_mark", "an int", isInt);
  if (hwm !== undefined) cfg.highWaterMark = hwm;
  return cfg;
}
