/**
 * Where a client finds the broker, from configuration alone. Here rather than in broker/from-config.ts
 * (which re-exports them) because that module imports every transport, the outbox and their native
 * addons: a one-shot `herald publish` must not pay for loading them.
 */
import { join } from "node:path";
import type { HeraldConfig } from "./schema.js";

/** The IPC submit endpoint every client finds without configuration. */
export function ipcSubmitEndpoint(config: HeraldConfig): string {
  return `ipc://${join(config.paths.runtimeDir, "submit.sock")}`;
}

/** Where clients submit: IPC when enabled, else the first TCP endpoint (0.0.0.0 becomes 127.0.0.1). */
export function clientSubmitEndpoint(config: HeraldConfig): string {
  if (config.broker.submit.ipc) return ipcSubmitEndpoint(config);
  const tcp = config.broker.submit.tcp[0];
  return tcp ? connectable(tcp) : ipcSubmitEndpoint(config);
}

/** A bound endpoint as a client would connect to it. */
export function connectable(endpoint: string): string {
  return endpoint.replace("://0.0.0.0:", "://127.0.0.1:").replace("://*:", "://127.0.0.1:");
}

const TCP = /^tcp:\/\/(\*|\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?):(\d{1,5})$/;

/**
 * Why a fedmsg service endpoint is unusable, or undefined when it is a `tcp://host:port` or `ipc://path`
 * (fedmsg's endpoints always name their port). Checked in fedmsg's files and in herald's legacy: section.
 */
export function endpointProblem(endpoint: string): string | undefined {
  if (endpoint.startsWith("ipc://")) return endpoint.length > 6 ? undefined : "ipc:// needs a path";
  const m = TCP.exec(endpoint);
  if (!m) return "expected tcp://host:port or ipc://path";
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `port ${port} is out of range 1-65535`;
  return undefined;
}

/** Where `broker.metrics` listens: a host node:http can bind (brackets of an IPv6 address removed) and a port. */
export interface ListenAddress {
  host: string;
  port: number;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?):(\d{1,5})$/;
const EXAMPLE = "e.g. 127.0.0.1:9479 (this host only), or null to turn it off";

/**
 * `broker.metrics` as written (`HOST:PORT`), or why it is unusable. Each wrong shape an operator is
 * likely to write (a port alone, a URL, an IPv6 address without brackets, `*`) gets its own fix.
 */
export function listenAddress(value: unknown): ListenAddress | { problem: string } {
  if (typeof value === "number")
    return { problem: `a port alone: write HOST:PORT, e.g. 127.0.0.1:${value} (this host only)` };
  if (typeof value !== "string") return { problem: `expected HOST:PORT as a string, ${EXAMPLE}` };
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value))
    return { problem: `write HOST:PORT without a scheme or path, ${EXAMPLE}` };
  if (!value.startsWith("[") && (value.match(/:/g)?.length ?? 0) > 1)
    return { problem: "put an IPv6 address in brackets: [::1]:9479" };
  if (/^\*?:/.test(value))
    return { problem: "name the host: 127.0.0.1 (this host only) or 0.0.0.0 (every interface), then :PORT" };
  const m = HOST_PORT.exec(value);
  if (!m) return { problem: `expected HOST:PORT, ${EXAMPLE}` };
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return { problem: `port ${port} is out of range 1-65535` };
  const host = m[1]!.replace(/^\[(.*)\]$/, "$1");
  // Literals are checked here: node would only fail at bind time, after the broker started.
  if (m[1]!.startsWith("[") && !isIPv6(host))
    return { problem: `[${host}] is not an IPv6 address, ${EXAMPLE}` };
  if (/^[0-9.]+$/.test(host) && !isIPv4(host))
    return { problem: `${host} is not an IPv4 address, ${EXAMPLE}` };
  return { host, port };
}

/** Without node:net (this module is on a one-shot publish's path): four numbers 0-255. */
function isIPv4(host: string): boolean {
  const parts = host.split(".");
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/** WHATWG URL parsing validates an IPv6 literal (and a global URL needs no import). */
function isIPv6(host: string): boolean {
  try {
    return new URL(`http://[${host}]/`).hostname.length > 2;
  } catch {
    return false;
  }
}
