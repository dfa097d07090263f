import { describe, expect, it } from "vitest";
import * as broker from "../src/broker/from-config.js";
import { clientSubmitEndpoint, connectable, ipcSubmitEndpoint } from "../src/config/endpoints.js";
import type { HeraldConfig } from "../src/config/schema.js";

function config(ipc: boolean, tcp: string[]): HeraldConfig {
  return {
    paths: { runtimeDir: "/run/herald" },
    broker: { submit: { ipc, tcp } },
  } as unknown as HeraldConfig;
}

describe("client endpoint helpers", () => {
  it("find the IPC socket first, else the first TCP endpoint as a client connects to it", () => {
    expect(clientSubmitEndpoint(config(true, ["tcp://0.0.0.0:9939"]))).toBe("ipc:///run/herald/submit.sock");
    expect(clientSubmitEndpoint(config(false, ["tcp://0.0.0.0:9939"]))).toBe("tcp://127.0.0.1:9939");
    expect(clientSubmitEndpoint(config(false, ["tcp://*:9939", "tcp://10.0.0.1:1"]))).toBe(
      "tcp://127.0.0.1:9939",
    );
    expect(clientSubmitEndpoint(config(false, ["tcp://10.0.0.1:9939"]))).toBe("tcp://10.0.0.1:9939");
    expect(clientSubmitEndpoint(config(false, []))).toBe("ipc:///run/herald/submit.sock");
    expect(ipcSubmitEndpoint(config(false, []))).toBe("ipc:///run/herald/submit.sock");
    expect(["tcp://0.0.0.0:1", "tcp://*:2", "ipc:///x", "tcp://h:3"].map(connectable)).toEqual([
      "tcp://127.0.0.1:1",
      "tcp://127.0.0.1:2",
      "ipc:///x",
      "tcp://h:3",
    ]);
  });

  it("are the ones the broker's module exports (one definition)", () => {
    expect(broker.clientSubmitEndpoint).toBe(clientSubmitEndpoint);
    expect(broker.connectable).toBe(connectable);
    expect(broker.ipcSubmitEndpoint).toBe(ipcSubmitEndpoint);
  });
});
