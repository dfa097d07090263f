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
