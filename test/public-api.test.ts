import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as api from "../src/index.js";
import * as testing from "../src/testing/index.js";

// The public surface is a deliberate list: adding or removing a runtime export must change this test.
const RUNTIME_EXPORTS = [
  "AmqpTransport",
  "Broker",
  "BrokerUnavailableError",
  "ClosedError",
  "ConfigError",
  "ConnectionError",
  "ForwardTransport",
  "HeraldClient",
  "HeraldError",
  "LEGACY_HEADER",
  "MAX_TOPIC_BYTES",
  "MemoryBus",
  "MemoryTransport",
  "MessageRejectedError",
  "Outbox",
  "ProtocolError",
  "SecurityError",
  "Subscriber",
  "ThreadedAmqpSink",
  "TopicPattern",
  "TransportError",
  "ZmqPublishTransport",
  "ZmqSubscribeTransport",
  "brokerOptionsFromConfig",
  "canonicalJson",
  "checkConfigFile",
  "createBroker",
  "createClient",
  "createMessage",
  "decodeAmqp",
  "decodeEnvelope",
  "decodeLegacyEnvelope",
  "encodeAmqp",
  "encodeEnvelope",
  "encodeHeraldFrames",
  "encodeLegacyFrames",
  "errorFromWire",
  "legacyToHeraldYaml",
  "loadConfig",
  "loadLegacyConfig",
  "newId",
  "pythonJson",
  "renderConfig",
  "renderLegacyTable",
  "subscribe",
  "toCloudEvent",
  "toLegacyObject",
  "topicProblem",
  "validateMessage",
];

describe("public API", () => {
  it("exports exactly the listed names", () => {
    expect(Object.keys(api).sort()).toEqual([...RUNTIME_EXPORTS].sort());
  });

  it("is one explicit list: no `export *` in the entry points", () => {
    for (const f of ["index.ts", "testing/index.ts"]) {
      expect(readFileSync(join(import.meta.dirname, "..", "src", f), "utf8")).not.toMatch(/export \*/);
    }
  });

  it("herald/testing offers the in-memory transport and cassettes", () => {
    expect(Object.keys(testing).sort()).toEqual(["MemoryBus", "MemoryTransport", "Recorder", "readCassette"]);
  });

  it("every error class shares the one root", () => {
    for (const E of [
      api.ConfigError,
      api.ProtocolError,
      api.TransportError,
      api.SecurityError,
      api.MessageRejectedError,
    ]) {
      expect(E.prototype).toBeInstanceOf(api.HeraldError);
    }
  });
});
