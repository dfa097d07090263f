import type { Outbox } from "../storage/outbox.js";
import type { TransportHealth } from "../transport/types.js";
import type { SinkStatus } from "./dispatcher.js";
import type { RefusingStatus } from "./status-refusals.js";
import type { SubmitServer } from "./submit-server.js";

/** What `Broker.status()` answers (`herald status --json`, the metrics endpoint). */

export type { RefusingStatus } from "./status-refusals.js";

export interface SourceStatus {
  name: string;
  kind: string;
  /** Messages read but not yet stored by the broker. */
  waiting: number;
  counters: Record<string, number>;
  health: TransportHealth;
}

export interface BrokerStatus {
  broker: string;
  version: string;
  pid: number;
  startedAt: string;
  accepting: boolean;
  endpoints: string[];
  outbox: ReturnType<Outbox["stats"]>;
  sinks: SinkStatus[];
  /** Sources feeding this broker (AMQP queues with `ingest: true`), when any. */
  sources: SourceStatus[];
  /**
   * Present once the outbox refused messages for lack of room (STORAGE_FULL: the disk; OUTBOX_FULL: its
   * limits), until a message is stored again; `active` while the refusals are recent.
   */
  refusing?: RefusingStatus;
  /** Process memory in bytes (resident set, V8 heap, memory outside the heap such as SQLite and libzmq). */
  memory: { rss: number; heapUsed: number; external: number };
  submit: SubmitServer["counters"] & {
    loopsStopped: number;
    admissionRejected: number;
    /** Admission refusals by error code (BAD_SIGNATURE, UNKNOWN_KEY, ..., UNAUTHORIZED_TOPIC). */
    admissionByCode: Record<string, number>;
  };
}

/** Process memory in bytes, as status() reports it. */
export function memory(): BrokerStatus["memory"] {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}
