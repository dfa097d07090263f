/** Setup helpers of the shim (shim.ts): its own broker client, its identity, the files it watches. */
import { realpathSync, statSync } from "node:fs";
import { clientSubmitEndpoint, connectable } from "../broker/from-config.js";
import { HeraldClient } from "../client/publisher.js";
import { clientSecurity, configIdentity } from "../client/security.js";
import type { HeraldConfig } from "../config/schema.js";
import type { Identity } from "../security/keys.js";

/** Where `herald shim` in its own process reads herald traffic: the broker's herald-format PUB. */
export function heraldPub(config: HeraldConfig): string | undefined {
  const p = config.broker.publish.find((s) => s.format === "herald");
  return p ? connectable(p.endpoint) : undefined;
}

/** The config file as `herald cutover` must name it (through symlinks), or as given when it is missing. */
export function realpathOr(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

/** 0 for a file that is missing now: its reappearance is a change too. */
export function mtime(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * `herald shim` in its own process submits like any client: over CURVE with security.identity when the
 * endpoint is tcp:// and security.curve is on (clientSecurity throws a clear error when it cannot read that
 * key). It does not sign: Ingest vouches for each message itself.
 */
export function standaloneClient(config: HeraldConfig, submitEndpoint: string | undefined): HeraldClient {
  const endpoint = submitEndpoint ?? clientSubmitEndpoint(config);
  const { curve } = clientSecurity(config, endpoint);
  return new HeraldClient({
    endpoint,
    timeoutMs: config.client.timeout,
    retries: config.client.retries,
    maxBatch: config.broker.submit.maxBatch,
    maxBodyBytes: config.limits.maxBodyBytes,
    ...(curve ? { curve } : {}),
  });
}

/** The shim signs what it ingests with the configured identity, when this process can read its key. */
export function shimIdentity(config: HeraldConfig): { identity?: Identity } {
  const identity = configIdentity(config);
  return identity ? { identity } : {};
}
