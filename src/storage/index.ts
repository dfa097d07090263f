export { SCHEMA_VERSION } from "./db.js";
export type { FailpointAction } from "./failpoints.js";
export { FailpointError, Failpoints, failpoint, processFailpoints } from "./failpoints.js";
export type { FsyncTiming } from "./fsync-probe.js";
export { measureFsync } from "./fsync-probe.js";
export type { AppendResult, OutboxOptions, OutboxStats, StoredMessage } from "./outbox.js";
export { Outbox } from "./outbox.js";
