/** The fedmsg migration shim: per-service stages, ingest, bridged legacy ports, listener evidence, cutover. */
export { BridgedService, type PortState } from "./bridged.js";
export * from "./cutover.js";
export {
  type EvidenceFile,
  evidencePath,
  type PortEvidence,
  readEvidence,
  type ServiceEvidence,
} from "./evidence.js";
export { ownerOf, PubFeed, RELAY_OUTBOUND, ShimSink } from "./feed.js";
export { INGESTED_BY, INGESTED_FROM, RELAY_INBOUND, VOUCHED } from "./ingest.js";
export {
  bindAddress,
  defaultLocalHosts,
  isLocalEndpoint,
  resolvePlan,
  type ShimPlan,
  type ShimService,
} from "./services.js";
export { startShim } from "./shim.js";
export type { ShimHandle, ShimOptions, ShimStatus } from "./types.js";
