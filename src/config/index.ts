/** Public surface of herald's configuration system. */
export {
  COMPUTED_KEYS,
  computeDefaults,
  DEFAULT_AMQP_URL,
  defaultDataDir,
  defaultRuntimeDir,
  type MachineFacts,
  STATIC_DEFAULTS,
} from "./defaults.js";
export { ENV_PREFIX, NON_CONFIG_ENV } from "./env.js";
export {
  findConfigFile,
  type LoadedConfig,
  type LoadOptions,
  loadConfig,
  loadConfigText,
  type Provenance,
  SYSTEM_CONFIG_PATH,
} from "./load.js";
export { type ConfigProblem, formatProblem } from "./problems.js";
export type {
  AmqpSinkConfig,
  AmqpSourceConfig,
  ForwardSinkConfig,
  HeraldConfig,
  LegacyServiceConfig,
  LegacyStage,
  LogLevel,
  PublishFormat,
  PublishSocketConfig,
  SinkConfig,
  SourceConfig,
  TlsConfig,
  ZeromqSinkConfig,
} from "./schema.js";
export { CONFIG_SCHEMA } from "./schema.js";
export {
  type CheckResult,
  checkConfigFile,
  maskSecrets,
  provenanceLabel,
  type RenderOptions,
  renderConfig,
} from "./show.js";
export { formatDuration, formatSize, parseDuration, parseSize } from "./units.js";
export { envVarFor } from "./walk.js";
