import { createClient } from "../client/create.js";
import type { HeraldClient } from "../client/publisher.js";
import { context } from "./context.js";

/**
 * Ask the broker one question (status, trace): a client without retries and a 2 s timeout, so a missing
 * broker is reported at once (exit 4), at `--endpoint` if given; closed afterwards.
 */
export async function askBroker<T>(
  values: { config?: string | undefined; endpoint?: string | undefined },
  ask: (client: HeraldClient) => Promise<T>,
): Promise<T> {
  const ctx = context(values.config);
  const client = createClient({
    config: ctx.config,
    retries: 0,
    timeoutMs: 2000,
    ...(values.endpoint ? { endpoint: values.endpoint } : {}),
  });
  try {
    return await ask(client);
  } finally {
    await client.close();
  }
}
