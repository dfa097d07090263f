import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as api from "../src/index.js";
import * as testing from "../src/testing/index.js";

// The public surface is a deliberate list: adding or removing a runtime export must change this test.
const RUNTIME_EXPORTS = [
  "subscribeLegacyAndHerald",
  "vouchIngested",
  "verifyMessage",
  "trustKey",
  "TrustStore",
  "TopicPolicy",
  "signMessage",
  "revokeKey",
  "loadPublicKey",
  "loadIdentity",
  "listKeys",
  "keyIdOf",
  "generateIdentity",
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
  "SchemaRegistry",
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
  "renderMetrics",
  "startMetricsServer",
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

  it('every name the docs import from "herald" is exported', () => {
    const root = join(import.meta.dirname, "..");
    const docs = ["README.md", ...readdirSync(join(root, "docs")).map((f) => join("docs", f))];
    const imported = docs.flatMap((f) =>
      [...readFileSync(join(root, f), "utf8").matchAll(/import \{([^}]+)\} from "herald";/g)].flatMap((m) =>
        m[1]!.split(",").map((n) => `${f}: ${n.trim()}`),
      ),
    );
    expect(imported.length).toBeGreaterThan(3);
    const exported = new Set(Object.keys(api));
    expect(imported.filter((x) => !exported.has(x.split(": ")[1]!))).toEqual([]);
  });

  it("is one explicit list: no `export *` in the entry points", () => {
    for (const f of ["index.ts", "testing/index.ts"]) {
      expect(readFileSync(join(import.meta.dirname, "..", "src", f), "utf8")).not.toMatch(/export \*/);
    }
  });

  it("herald/testing offers the in-memory transport, cassettes and an in-process broker", () => {
    expect(Object.keys(testing).sort()).toEqual([
      "MemoryBus",
      "MemoryTransport",
      "Recorder",
      "readCassette",
      "startTestBroker",
    ]);
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
