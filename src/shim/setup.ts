/** Setup helpers of the shim (shim.ts): its own broker client, its identity, the files it watches. */
import { realpathSync, statSync } from "node:fs";
import { clientSubmitEndpoint, connectable } from "../broker/from-config.js";
import { HeraldClient } from "../client/publisher.js";
import { clientSecurity, configIdentity, identityKeyFile } from "../client/security.js";
import type { HeraldConfig } from "../config/schema.js";
import type { Identity } from "../security/keys.js";
import type { Logger } from "../util/log.js";

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

/**
 * The shim signs what it ingests with the configured identity, when this process can read its key.
 * Without one, a broker that requires signatures refuses everything the shim ingests: said at start,
 * since each refusal alone reads like a problem with one message.
 */
export function shimIdentity(config: HeraldConfig, log: Logger): { identity?: Identity } {
  const identity = configIdentity(config);
  if (identity) return { identity };
  const key = identityKeyFile(config);
  if (config.security.requireSignatures)
    log.warn(
      "security.requireSignatures is on but the shim has no key to sign what it ingests: the broker refuses every ingested fedmsg message (UNSIGNED; REFUSED in herald cutover status). Set security.identity to a key pair whose .pub the broker trusts, readable by this process",
      key === undefined ? { identity: null } : { identity: config.security.identity, key },
    );
  return {};
}
