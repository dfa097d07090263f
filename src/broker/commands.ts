import { rejected } from "../errors.js";
import type { OutboxTrace } from "../storage/outbox.js";
import type { SinkStanding } from "./dispatcher.js";

/**
 * The broker's control commands other than status (submit-protocol.md, "Control commands"): `ping` and
 * `trace`. Kept apart from broker.ts so that the broker holds the lifecycle and this file the answers.
 */

export interface PongReply {
  pong: true;
  broker: string;
  limits?: { maxBodyBytes: number; maxBatch: number };
}

/**
 * `ping` answers who this is; with `{"limits": true}` also the limits a forwarding broker must keep to
 * (a request over them is dropped unanswered). Only on request: the plain answer stays as it always was.
 */
export function pongReply(broker: string, limits: PongReply["limits"] | undefined): PongReply {
  return limits === undefined ? { pong: true, broker } : { pong: true, broker, limits };
}

/**
 * Where a message stands with one sink:
 * - `done`: the sink took it (a PUB socket published it, RabbitMQ confirmed it, the hub stored it, ...);
 * - `sending`: handed to the transport, not confirmed yet;
 * - `waiting`: the sink has not reached it (`ahead` messages before it);
 * - `held`: the shim holds it for a bridged service whose legacy port is not bound yet;
 * - `passed-over`: the sink can never carry it (too large for it, not encodable): logged, other sinks got it;
 * - `not-for-sink`: the sink was added after the message was stored (a new sink starts at the newest).
 */
export type TraceState = "done" | "sending" | "waiting" | "held" | "passed-over" | "not-for-sink";

export interface SinkTrace {
  name: string;
  kind: string;
  state: TraceState;
  cursor: number;
  /** `waiting`: messages this sink takes before this one. */
  ahead?: number;
  /** Why it was passed over, who holds it, when the sink was added. */
  detail?: string;
  /** The sink's transport state now (up, down, ...). */
  sinkState: string;
  lastError?: string;
}

/** The answer to `trace`: where the message with this id went. */
export interface MessageTrace {
  id: string;
  broker: string;
  found: boolean;
  seq?: number;
  /** When this broker stored it (ISO 8601). */
  acceptedAt?: string;
  topic?: string;
  sentAt?: string;
  origin?: { host: string; app: string };
  via?: string[];
  sinks: SinkTrace[];
  /** found false: the oldest message still stored, and how long delivered messages are kept. */
  oldestSeq?: number;
  oldestAcceptedAt?: string;
  keptForMs?: number;
}

/** The id argument of `trace`: a string as message ids are (BAD_REQUEST otherwise). */
export function traceIdArg(args: Record<string, unknown>): string {
  const id = args["id"];
  if (typeof id !== "string" || id.length === 0 || id.length > 256)
    throw rejected("BAD_REQUEST", 'trace needs {"id": "<message id>"}: a string of 1-256 characters');
  return id;
}

/** Build the trace of `id` from what the outbox knows and where each sink stands. */
export function traceReply(
  broker: string,
  id: string,
  found: OutboxTrace,
  standing: (seq: number) => SinkStanding[],
): MessageTrace {
  const stored = found.stored;
  if (stored === undefined) {
    const t: MessageTrace = { id, broker, found: false, sinks: [], keptForMs: found.keptForMs };
    if (found.oldest !== undefined) {
      t.oldestSeq = found.oldest.seq;
      t.oldestAcceptedAt = new Date(found.oldest.acceptedAt).toISOString();
    }
    return t;
  }
  const m = stored.message;
  const t: MessageTrace = {
    id,
    broker,
    found: true,
    seq: stored.seq,
    acceptedAt: new Date(stored.acceptedAt).toISOString(),
    topic: m.topic,
    sentAt: m.sentAt,
    origin: { host: m.origin.host, app: m.origin.app },
    sinks: standing(stored.seq).map((s) => sinkTrace(s, stored.seq, found.joined[s.name])),
  };
  if (m.via !== undefined) t.via = m.via;
  return t;
}

/** What "done" cannot tell apart by the cursor alone, said where it may apply. */
function doneDetail(t: SinkTrace, s: SinkStanding, joined: number | undefined): SinkTrace {
  const notes: string[] = [];
  // A mandatory publish nobody's queue took comes back from RabbitMQ and counts as settled: say so.
  const returned = s.health.counters["returned"] ?? 0;
  if (returned > 0)
    notes.push(
      `RabbitMQ returned ${returned} message(s) of this sink as unroutable (no queue bound for the topic)`,
    );
  if (joined === undefined)
    notes.push(
      "this sink was registered before herald recorded when: a message older than the sink never reached it",
    );
  return notes.length > 0 ? { ...t, detail: notes.join("; ") } : t;
}

function sinkTrace(s: SinkStanding, seq: number, joined: number | undefined): SinkTrace {
  const t: SinkTrace = {
    name: s.name,
    kind: s.kind,
    state: "done",
    cursor: s.cursor,
    sinkState: s.health.state,
  };
  const lastError = s.lastError ?? s.health.lastError;
  if (lastError !== undefined) t.lastError = lastError;
  if (s.passedOver !== undefined) return { ...t, state: "passed-over", detail: s.passedOver };
  if (joined !== undefined && seq <= joined)
    return { ...t, state: "not-for-sink", detail: `sink added after this message (at seq ${joined})` };
  if (s.held !== undefined) return { ...t, state: s.held.state, detail: s.held.detail };
  if (s.cursor >= seq) return doneDetail(t, s, joined);
  if (s.sentThrough >= seq) return { ...t, state: "sending" };
  return { ...t, state: "waiting", ahead: seq - s.cursor - 1 };
}
