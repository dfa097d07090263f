import { SecurityError } from "../errors.js";
import type { SecurityLogger, TrustedKey } from "./trust.js";
import { type CurveKeyLookup, startZap, stopZap, zapRunning } from "./zap.js";

/**
 * libzmq has one ZAP endpoint per context, and herald uses the default context: one handler per process.
 * Several brokers in one process (tests, a forwarding pair) each register their own trust store under
 * their own ZAP domain; the handler is started by the first registration and stopped with the last. A
 * socket whose domain nobody registered is denied (fail closed).
 */
const domains = new Map<string, CurveKeyLookup>();
let owned = false;
let chain: Promise<unknown> = Promise.resolve();

const byDomain: CurveKeyLookup = {
  byCurveKey: (raw: Uint8Array, domain?: string): TrustedKey | undefined =>
    domain === undefined ? undefined : domains.get(domain)?.byCurveKey(raw),
  byKeyId: (keyId: string): TrustedKey | undefined => {
    for (const t of domains.values()) {
      const k = t.byKeyId(keyId);
      if (k) return k;
    }
    return undefined;
  },
};

/**
 * Admit CURVE clients of sockets with ZAP domain `domain` by `trust`. Starts the process's ZAP handler
 * if needed. Returns a release function; the handler stops when the last domain is released.
 */
export function registerZapDomain(
  domain: string,
  trust: CurveKeyLookup,
  logger?: SecurityLogger,
): Promise<() => Promise<void>> {
  const run = chain.then(async () => {
    if (domains.has(domain))
      throw new SecurityError("SECURITY", `ZAP domain '${domain}' is already registered in this process`);
    if (!owned) {
      if (zapRunning())
        throw new SecurityError(
          "SECURITY",
          "a ZAP handler started outside registerZapDomain() is running: stop it (stopZap) or register through it",
        );
      await startZap(byDomain, logger ? { logger } : {});
      owned = true;
    }
    domains.set(domain, trust);
    let released = false;
    return async (): Promise<void> => {
      if (released) return;
      released = true;
      const done = chain.then(async () => {
        domains.delete(domain);
        if (domains.size === 0 && owned) {
          owned = false;
          await stopZap();
        }
      });
      chain = done.catch(() => {});
      await done;
    };
  });
  chain = run.catch(() => {});
  return run;
}
