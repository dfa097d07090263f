import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { type HeraldConfig, isZ85KeyValue } from "../config/schema.js";
import { SecurityError } from "../errors.js";
import { type Identity, loadIdentity, loadPublicKey } from "../security/keys.js";
import type { CurveClientOptions } from "../transport/zeromq-common.js";

/** The configured identity's secret key file, or undefined when security.identity is not set. */
export function identityKeyFile(config: HeraldConfig): string | undefined {
  const name = config.security.identity;
  return name === null ? undefined : join(config.security.keysDir, `${name}.key`);
}

/** The configured identity's key pair, or undefined when none is set or this user cannot read it. */
export function configIdentity(config: HeraldConfig): Identity | undefined {
  const file = identityKeyFile(config);
  if (file === undefined) return undefined;
  try {
    accessSync(file, constants.R_OK);
  } catch {
    return undefined; // another user's key (e.g. the broker's): publish unsigned, the broker decides
  }
  return loadIdentity(file); // refuses a secret key file others can read
}

/**
 * The local broker's CURVE public key for clients: `security.serverKey` as a Z85 key or a .pub path,
 * else `<keysDir>/<identity>.pub` (right when client and broker share one configuration and identity).
 */
export function configServerKey(config: HeraldConfig): string {
  const s = config.security;
  if (s.serverKey !== undefined && s.serverKey !== null)
    return isZ85KeyValue(s.serverKey) ? s.serverKey : loadPublicKey(s.serverKey).curvePublic;
  if (s.identity === null)
    throw new SecurityError(
      "SECURITY",
      "security.curve is on but neither security.serverKey nor security.identity is set: set security.serverKey to the broker's .pub file or its Z85 key ('herald keys show NAME')",
    );
  return loadPublicKey(join(s.keysDir, `${s.identity}.pub`)).curvePublic;
}

/** What createClient adds from configuration: signing (requireSignatures) and CURVE (tcp:// endpoints). */
export function clientSecurity(
  config: HeraldConfig,
  endpoint: string,
): { sign?: Identity; curve?: { identity: Identity; serverKey: string } } {
  const s = config.security;
  const curveWanted = s.curve && endpoint.startsWith("tcp://");
  if (!s.requireSignatures && !curveWanted) return {};
  const identity = configIdentity(config);
  if (!identity) {
    if (curveWanted) throw unreadable(config, "submit over CURVE");
    return {};
  }
  return {
    ...(s.requireSignatures ? { sign: identity } : {}),
    ...(curveWanted ? { curve: { identity, serverKey: configServerKey(config) } } : {}),
  };
}

/** CURVE client keys for a subscriber of a tcp:// herald PUB socket when security.curve. */
export function subscriberCurve(config: HeraldConfig, endpoint: string): CurveClientOptions | undefined {
  if (!config.security.curve || !endpoint.startsWith("tcp://")) return undefined;
  const identity = configIdentity(config);
  if (!identity) throw unreadable(config, "subscribe over CURVE");
  return {
    serverKey: configServerKey(config),
    publicKey: identity.curvePublic,
    secretKey: identity.curveSecret,
  };
}

function unreadable(config: HeraldConfig, what: string): SecurityError {
  const name = config.security.identity;
  return new SecurityError(
    "SECURITY",
    name === null
      ? `security.curve is on: to ${what} set security.identity to a key pair of yours ('herald keys generate NAME') whose .pub the broker trusts`
      : `security.curve is on: to ${what} this user needs to read ${identityKeyFile(config)}; use your own identity (HERALD_SECURITY__IDENTITY, HERALD_SECURITY__KEYS_DIR) whose .pub the broker trusts`,
  );
}

/**
 * Why a client built from this configuration sends messages unsigned, for a broker's UNSIGNED refusal. A
 * client without a readable key publishes unsigned and lets the broker decide (the broker's own key is not
 * the app user's to read); the refusal alone cannot say which case it was, and a typo in the identity
 * looks like the rest.
 */
export function unsignedReason(config: HeraldConfig): string {
  const own = "use a key pair of yours ('herald keys generate NAME') whose .pub the broker trusts";
  const file = identityKeyFile(config);
  if (file === undefined) return `this client signs nothing: security.identity is not set; ${own}`;
  const identity = config.security.identity;
  try {
    accessSync(file, constants.R_OK);
    return `this client signs with ${file} only when security.requireSignatures is true in its own configuration`;
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    return missing
      ? `security.identity is ${identity} but ${file} does not exist: check the name and security.keysDir, or ${own}`
      : `this user cannot read ${file} (security.identity ${identity}): ${own}, with HERALD_SECURITY__IDENTITY and HERALD_SECURITY__KEYS_DIR`;
  }
}
