/**
 * herald's public API. Everything a user may import is listed here by name; internals stay out.
 * test/public-api.test.ts checks this list, so additions are deliberate.
 */

// Broker.
export { type AdmissionCheck, Broker, type BrokerOptions, type BrokerStatus } from "./broker/broker.js";
export type { MessageTrace, SinkTrace, TraceState } from "./broker/commands.js";
export { brokerOptionsFromConfig, createBroker } from "./broker/from-config.js";
// Monitoring: Prometheus text from Broker.status(), and the HTTP endpoint `herald serve` runs (broker.metrics).
export {
  type MetricsServer,
  type MetricsServerOptions,
  renderMetrics,
  startMetricsServer,
} from "./broker/metrics.js";
// Client: publish and subscribe.
export {
  type Ack,
  type ClientOptions,
  createClient,
  type Gap,
  HeraldClient,
  type JsonInputs,
  type LegacyAndHeraldOptions,
  type LegacyAndHeraldSubscriber,
  type PublishOptions,
  type ReceivedMessage,
  type SubscribeOptions,
  Subscriber,
  type SubscriberOptions,
  type SubscriberStats,
  subscribe,
  subscribeLegacyAndHerald,
} from "./client/index.js";
// Configuration.
export {
  checkConfigFile,
  type HeraldConfig,
  type LoadedConfig,
  loadConfig,
  type Provenance,
  renderConfig,
} from "./config/index.js";
// Errors: one tree, stable codes.
export {
  BrokerUnavailableError,
  ClosedError,
  ConfigError,
  ConnectionError,
  type ErrorCode,
  errorFromWire,
  HeraldError,
  MessageRejectedError,
  ProtocolError,
  SecurityError,
  TransportError,
} from "./errors.js";
// Legacy fedmsg configuration.
export {
  type LegacyConfig,
  legacyToHeraldYaml,
  loadLegacyConfig,
  renderLegacyTable,
} from "./legacy/config/index.js";
// Body schemas the broker checks (schemas.dir); usable in an app's own tests.
export { SchemaRegistry, type SchemaRegistryOptions } from "./schemas/registry.js";
// Security: identities, trust, signatures, topic policy (docs/security.md).
export {
  generateIdentity,
  type Identity,
  type KeyLookup,
  keyIdOf,
  listKeys,
  loadIdentity,
  loadPublicKey,
  type PolicyRules,
  type PublicIdentity,
  revokeKey,
  type SignOptions,
  signMessage,
  TopicPolicy,
  TrustStore,
  type TrustStoreOptions,
  trustKey,
  type VerifyCode,
  type VerifyOptions,
  type VerifyResult,
  verifyMessage,
  vouchIngested,
} from "./security/index.js";
// Durable outbox.
export { Outbox, type OutboxOptions, type OutboxStats } from "./storage/index.js";
export { AmqpTransport } from "./transport/amqp.js";
export type { AmqpTransportOptions } from "./transport/amqp-options.js";
export { ThreadedAmqpSink } from "./transport/amqp-thread.js";
export { type ForwardOptions, ForwardTransport } from "./transport/forward.js";
export { MemoryBus, MemoryTransport } from "./transport/memory.js";

// Transports: one interface, several siblings.
export type {
  Delivery,
  ReceiveOptions,
  Subscription,
  Transport,
  TransportHealth,
  WireFormat,
} from "./transport/types.js";
export { type ZmqPublishOptions, ZmqPublishTransport } from "./transport/zeromq-pub.js";
export { type ZmqSubscribeOptions, ZmqSubscribeTransport } from "./transport/zeromq-sub.js";
export { decodeAmqp, encodeAmqp } from "./wire/fedora-messaging.js";
export { decodeEnvelope, encodeEnvelope, encodeHeraldFrames, toCloudEvent } from "./wire/herald.js";
// Messages and wire formats.
export type { JsonObject, JsonShaped, JsonValue, NotArray } from "./wire/json.js";
export { canonicalJson, pythonJson } from "./wire/json.js";
export { decodeLegacyEnvelope, encodeLegacyFrames, LEGACY_HEADER, toLegacyObject } from "./wire/legacy.js";
export {
  createMessage,
  type Headers,
  type HeaderValue,
  type Message,
  type MessageInput,
  newId,
  type Origin,
  validateMessage,
} from "./wire/message.js";
export { MAX_TOPIC_BYTES, TopicPattern, topicProblem } from "./wire/topic.js";
