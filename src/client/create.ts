/**
 * createClient on its own module: what `herald publish` and `herald status` import. client/index.ts
 * also builds subscribers (legacy config parser, shim plan), which a one-shot publish does not need.
 */
import { clientSubmitEndpoint } from "../config/endpoints.js";
import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { type ClientOptions, HeraldClient } from "./publisher.js";
import { clientSecurity } from "./security.js";

/**
 * A client for the local broker with zero configuration: the endpoint, timeout and retries come from
 * herald's configuration (file, environment or defaults) unless given. With `security.requireSignatures`
 * every message is signed with `security.identity` when this user can read its key; with
 * `security.curve` a tcp:// endpoint is spoken to over CURVE with that identity.
 */
export function createClient(opts: ClientOptions & { config?: HeraldConfig } = {}): HeraldClient {
  const config = opts.config ?? (opts.endpoint === undefined ? loadConfig({}).config : undefined);
  const endpoint = opts.endpoint ?? clientSubmitEndpoint(config!);
  const sec = config && !opts.sign && !opts.curve ? clientSecurity(config, endpoint) : {};
  return new HeraldClient({
    ...sec,
    ...opts,
    endpoint,
    timeoutMs: opts.timeoutMs ?? config?.client.timeout ?? 2500,
    retries: opts.retries ?? config?.client.retries ?? 3,
    maxBodyBytes: opts.maxBodyBytes ?? config?.limits.maxBodyBytes ?? 1 << 20,
    maxBatch: opts.maxBatch ?? config?.broker.submit.maxBatch ?? 1000,
  });
}
