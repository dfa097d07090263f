/**
 * node:crypto, loaded on first use. Loading it costs a one-shot `herald publish` ~7 ms and ~260 page
 * faults (its internal modules: ciphers, keys, X.509, Web Crypto), and a publish with neither signing
 * nor CURVE never needs it. Modules on that path (security/, the config validator's fingerprint, message
 * ids) reach it through here instead of a static import, which a CommonJS bundle would run at start.
 */

import type * as Crypto from "node:crypto";
import { createRequire } from "node:module";

let loaded: typeof Crypto | undefined;

export function nodeCrypto(): typeof Crypto {
  loaded ??= createRequire(import.meta.url)("node:crypto") as typeof Crypto;
  return loaded;
}
