import type { Submitter } from "../broker/local-submit.js";
import type { HeraldConfig } from "../config/schema.js";
import type { LegacyConfig, LoadLegacyOptions } from "../legacy/config/types.js";
import type { Transport } from "../transport/types.js";
import type { EvidenceFile } from "./evidence.js";

export type ShimStatus = EvidenceFile;

export interface ShimOptions {
  /**
   * Where herald traffic for bridged services comes from. "sink": the caller adds `handle.sink` to the
   * broker's sinks (in-process, fed from the outbox with a durable cursor: nothing missed). "subscribe":
   * read the broker's herald PUB socket (a separate process). Default "subscribe".
   */
  feed?: "sink" | "subscribe";
  /** Herald PUB endpoint to read with feed "subscribe"; default the configured herald-format broker.publish. */
  heraldEndpoint?: string;
  /** Submit endpoint for ingested messages; default the client endpoint from the configuration. */
  submitEndpoint?: string;
  /**
   * Submit ingested messages through this instead of a client of `submitEndpoint`: `herald serve` gives
   * the in-broker shim its broker's LocalSubmitter (no socket between the two, whatever broker.submit is).
   */
  submitter?: Submitter;
  /** Host names that mean "this machine" for bridged endpoints; default loopback, wildcard, hostname, broker.name. */
  localHosts?: string[];
  /** Use this fedmsg configuration at start instead of reading `legacy.config` (reloads read the file). */
  legacyConfig?: LegacyConfig;
  legacyLoad?: LoadLegacyOptions;
  /** Evidence file; default `<dataDir>/shim-evidence.json`. */
  evidencePath?: string;
  /**
   * After binding a bridged port, wait at most this long for a subscriber before sending held messages;
   * default `legacy.settle`.
   */
  settleMs?: number;
  /** Reload when this file's mtime changes. */
  watch?: { file: string; load: () => HeraldConfig; intervalMs?: number };
}

export interface ShimHandle {
  /** The in-broker feed (see ShimOptions.feed). */
  readonly sink: Transport;
  /** Apply a new configuration: stage changes, endpoints, relay. Serialized; resolves when applied. */
  reload(config: HeraldConfig): Promise<void>;
  status(): ShimStatus;
  /** Resolves once everything routed so far has been written to the legacy ports. */
  flushed(): Promise<void>;
  stop(): Promise<void>;
}
