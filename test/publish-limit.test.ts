import { afterEach, describe, expect, it } from "vitest";
import { buildSinks } from "../src/broker/from-config.js";
import { loadConfig } from "../src/config/load.js";
import type { Transport } from "../src/transport/types.js";
import { silentLogger } from "../src/util/log.js";
import { createMessage } from "../src/wire/message.js";
import { freePorts } from "./helpers/serve.js";

const open: Transport[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});

describe("the broker's PUB sockets carry every message it accepts", () => {
  it("sends a body at the limit made of 2-byte characters on the legacy socket (ensure_ascii triples it)", async () => {
    const [herald, legacy] = await freePorts(2);
    const { config } = loadConfig({
      env: {
        HERALD_BROKER__PUBLISH__0__ENDPOINT: `tcp://127.0.0.1:${herald}`,
        HERALD_BROKER__PUBLISH__1__ENDPOINT: `tcp://127.0.0.1:${legacy}`,
      },
      systemPath: "/nonexistent/herald.yaml",
    });
    const sinks = buildSinks(config, silentLogger).slice(0, 2);
    open.push(...sinks);
    for (const s of sinks) await s.open();
    // {"s":"é…"} is 1,000,008 UTF-8 bytes: under the default 1 MiB body limit, so the broker accepts it.
    const msg = createMessage({ topic: "org.test.wide", body: { s: "é".repeat(500_000) } });
    for (const s of sinks) await expect(s.send([msg])).resolves.toBeUndefined();
  });
});
