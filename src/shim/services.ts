import { hostname } from "node:os";
import type { HeraldConfig, LegacyStage } from "../config/schema.js";
import { ConfigError } from "../errors.js";
import type { LegacyConfig } from "../legacy/config/types.js";

/** One fedmsg service as the shim sees it after merging herald's `legacy.services` over the fedmsg config. */
export interface ShimService {
  name: string;
  stage: LegacyStage;
  /** All endpoints of the service, in configuration order (what old subscribers connect to). */
  endpoints: string[];
  /** The part before the first dot: fedmsg's modname, the topic's 3rd word after prefix and environment. */
  module: string;
  /** The part after the first dot (a host name by convention); "" when the name has no dot. */
  host: string;
}

/** The resolved plan of the whole shim: every service, the relay, the topic scheme. */
export interface ShimPlan {
  services: Map<string, ShimService>;
  relayInbound: string | undefined;
  topicPrefix: string;
  environment: string;
}

/**
 * For when there is no fedmsg config at all (and herald's sets nothing). A fedmsg config that lacks
 * topic_prefix or environment gets fedmsg's own defaults when it is read (org.fedoraproject, dev:
 * legacy/config/normalize.ts), so these apply only to a shim with services listed in herald's config alone.
 */
export const FEDMSG_TOPIC_PREFIX = "org.fedoraproject";
export const FEDMSG_ENVIRONMENT = "prod";

/** Merge: legacy config endpoints (every service there defaults to stage legacy) <- herald legacy.services. */
export function resolvePlan(config: HeraldConfig, legacy: LegacyConfig | undefined): ShimPlan {
  const services = new Map<string, ShimService>();
  const names = new Set([...Object.keys(legacy?.endpoints ?? {}), ...Object.keys(config.legacy.services)]);
  for (const name of [...names].sort()) {
    const own = config.legacy.services[name];
    const endpoints = own?.endpoints ?? legacy?.endpoints[name];
    if (endpoints === undefined) {
      throw new ConfigError(
        "CONFIG",
        `legacy.services.${name} has no endpoints and the fedmsg config (${config.legacy.config ?? "legacy.config unset"}) does not list it: add endpoints: [...] or fix the name`,
        { details: { service: name } },
      );
    }
    const dot = name.indexOf(".");
    services.set(name, {
      name,
      stage: own?.stage ?? "legacy",
      endpoints: [...endpoints],
      module: dot < 0 ? name : name.slice(0, dot),
      host: dot < 0 ? "" : name.slice(dot + 1),
    });
  }
  return {
    services,
    relayInbound: config.legacy.relayInbound ?? legacy?.relayInbound,
    // null in herald's config: the fedmsg config's (which itself defaults to fedmsg's own defaults).
    topicPrefix: config.legacy.topicPrefix ?? legacy?.topicPrefix ?? FEDMSG_TOPIC_PREFIX,
    environment: config.legacy.environment ?? legacy?.environment ?? FEDMSG_ENVIRONMENT,
  };
}

/** Hosts that mean "this machine" for endpoints the shim may bind. */
export function defaultLocalHosts(config: HeraldConfig): string[] {
  return localHostsFor(config.broker.name);
}

export function localHostsFor(brokerName: string): string[] {
  const h = hostname();
  return ["127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "*", h, h.split(".")[0]!, brokerName];
}

/** `tcp://host:port` -> host (brackets kept for IPv6); ipc/inproc -> undefined. */
export function endpointHost(endpoint: string): string | undefined {
  const m = /^tcp:\/\/(\[[^\]]*\]|[^:]+):(\d+|\*)$/.exec(endpoint);
  return m ? m[1] : undefined;
}

/** ipc:// endpoints are always local; tcp ones when the host part names this machine. */
export function isLocalEndpoint(endpoint: string, localHosts: readonly string[]): boolean {
  if (endpoint.startsWith("ipc://")) return true;
  const host = endpointHost(endpoint);
  return host !== undefined && localHosts.includes(host);
}

/**
 * Where to bind a local endpoint. Loopback stays loopback; a host name binds every interface, as fedmsg's
 * own publishers do (they bind `tcp://*:<port>`), so subscribers connecting by name or address both reach it.
 */
export function bindAddress(endpoint: string): string {
  const host = endpointHost(endpoint);
  if (host === undefined) return endpoint;
  if (host === "127.0.0.1" || host === "::1" || host === "[::1]" || host === "*" || host === "0.0.0.0")
    return endpoint;
  const port = endpoint.slice(endpoint.lastIndexOf(":") + 1);
  return host === "localhost" ? `tcp://127.0.0.1:${port}` : `tcp://*:${port}`;
}

/** A bound endpoint as a subscriber on this host connects to it. */
export function connectAddress(endpoint: string): string {
  return endpoint.replace("://*:", "://127.0.0.1:").replace("://0.0.0.0:", "://127.0.0.1:");
}
