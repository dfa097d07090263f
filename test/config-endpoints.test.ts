import { describe, expect, it } from "vitest";
import * as broker from "../src/broker/from-config.js";
import * as client from "../src/config/endpoints.js";
import type { HeraldConfig } from "../src/config/schema.js";

// config/endpoints.ts copies the client-side endpoint helpers of broker/from-config.ts so that a one-shot
// publish does not load the broker's modules; the two copies must keep answering the same.
function config(ipc: boolean, tcp: string[]): HeraldConfig {
  return {
    paths: { runtimeDir: "/run/herald" },
    broker: { submit: { ipc, tcp } },
  } as unknown as HeraldConfig;
}

describe("client endpoint helpers", () => {
  it("agree with the broker's", () => {
    const cases = [
      config(true, []),
      config(true, ["tcp://0.0.0.0:9939"]),
      config(false, ["tcp://0.0.0.0:9939"]),
      config(false, ["tcp://*:9939", "tcp://10.0.0.1:1"]),
      config(false, ["tcp://10.0.0.1:9939"]),
      config(false, []),
    ];
    for (const c of cases) {
      expect(client.clientSubmitEndpoint(c)).toBe(broker.clientSubmitEndpoint(c));
      expect(client.ipcSubmitEndpoint(c)).toBe(broker.ipcSubmitEndpoint(c));
    }
    for (const e of ["tcp://0.0.0.0:1", "tcp://*:2", "ipc:///x", "tcp://h:3"])
      expect(client.connectable(e)).toBe(broker.connectable(e));
  });
});
