/**
 * `Broker.status()` in the Prometheus text exposition format 0.0.4, for GET /metrics (metrics.ts). Rendered
 * at scrape time from the status, so the hot path (submit, dispatch) counts nothing new for it.
 */
import type { BrokerStatus } from "./broker.js";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * Every metric with its HELP text, in the order rendered. A name ending in `_total` is a counter (since
 * the broker started), any other a gauge: the name alone decides the TYPE line, so they cannot disagree.
 */
const HELP = {
  herald_build_info: "herald's version and this broker's name (broker.name); always 1",
  herald_accepting: "1 while the broker accepts submissions; 0 while starting, stopping or failed",
  herald_outbox_head_seq: "Sequence number of the newest stored message",
  herald_outbox_rows: "Rows in the outbox, delivered ones kept for outbox.retention included",
  herald_outbox_pending_messages: "Messages some sink has not delivered yet (bounded by outbox.maxMessages)",
  herald_outbox_pending_bytes: "Bytes of the pending messages (bounded by outbox.maxBytes)",
  herald_outbox_oldest_pending_age_seconds: "Age of the oldest pending message; 0 when none is pending",
  herald_outbox_failed: "1 after a storage fail-stop: nothing is accepted until a restart",
  herald_outbox_refusing:
    "1 while the outbox refuses new messages for lack of room (STORAGE_FULL: the disk; OUTBOX_FULL: its limits)",
  herald_outbox_commits_total: "Committed append transactions",
  herald_outbox_restamped_rows_total: "Rows restamped because the wall clock went back",
  herald_sink_lag_messages: "Stored messages this sink has not delivered yet",
  herald_sink_cursor: "Sequence number this sink has delivered through",
  herald_sink_delivered_total: "Messages this sink delivered",
  herald_sink_retries_total: "Failed deliveries this sink retried",
  herald_sink_skipped_total: "Messages this sink can never carry, passed over (each logged as an error)",
  herald_sink_up: "1 when the sink's transport is up, else 0 (herald status says why)",
  herald_sink_subscribers: "Subscribers connected to a ZeroMQ PUB sink",
  herald_source_waiting_messages: "Messages read from the source, not yet stored by the broker",
  herald_source_ingested_total: "Messages from the source the broker stored",
  herald_source_duplicates_total: "Messages from the source the broker already had",
  herald_source_refused_total: "Messages from the source the broker refused",
  herald_source_retries_total: "Submissions of source messages retried",
  herald_source_up: "1 when the source's connection is up, else 0",
  herald_submit_requests_total: "Submit requests received, commands (status, ping, trace) included",
  herald_submit_messages_total: "Messages received in submit requests",
  herald_submit_rejected_total: "Messages answered with an error (outbox full, too large, refused...)",
  herald_submit_bad_requests_total: "Requests that did not decode",
  herald_submit_paused_total: "Times reading paused at the in-flight cap (backpressure)",
  herald_submit_loops_stopped_total: "Forwarded messages that had passed this broker before (loops stopped)",
  herald_submit_admission_rejected_total: "Messages refused by signature checks or topic policy, by code",
  herald_process_resident_memory_bytes: "Resident set size of the process",
  herald_process_heap_used_bytes: "V8 heap in use",
  herald_process_external_memory_bytes:
    "Memory outside the V8 heap held by JavaScript objects (SQLite, ZeroMQ)",
  herald_process_start_time_seconds: "When the broker started, in Unix time",
} as const;

type MetricName = keyof typeof HELP;
type Labels = Record<string, string>;
type Samples = Array<[Labels, number]>;

interface Family {
  name: MetricName;
  samples: Samples;
}

const family = (name: MetricName, samples: Samples): Family => ({ name, samples });
/** One unlabelled sample. */
const one = (value: number): Samples => [[{}, value]];
const flag = (on: boolean): number => (on ? 1 : 0);

/** The format's label value escapes: backslash, double quote and line feed (sink names are free text). */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text escapes only backslash and line feed. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** Go's ParseFloat spellings, which Prometheus reads; String() covers the finite numbers. */
function formatValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Number.POSITIVE_INFINITY) return "+Inf";
  if (n === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(n);
}

function renderFamily({ name, samples }: Family): string {
  const type = name.endsWith("_total") ? "counter" : "gauge";
  let out = `# HELP ${name} ${escapeHelp(HELP[name])}\n# TYPE ${name} ${type}\n`;
  for (const [labels, value] of samples) {
    const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
    out += `${name}${pairs.length > 0 ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}\n`;
  }
  return out;
}

function brokerFamilies(s: BrokerStatus, nowMs: number): Family[] {
  const o = s.outbox;
  // An oldest message stamped ahead of the clock (clock set back) is not "negative seconds old".
  const age = o.oldestPendingAt === undefined ? 0 : Math.max(0, (nowMs - o.oldestPendingAt) / 1000);
  return [
    family("herald_build_info", [[{ version: s.version, broker: s.broker }, 1]]),
    family("herald_accepting", one(flag(s.accepting))),
    family("herald_outbox_head_seq", one(o.headSeq)),
    family("herald_outbox_rows", one(o.totalRows)),
    family("herald_outbox_pending_messages", one(o.pendingMessages)),
    family("herald_outbox_pending_bytes", one(o.pendingBytes)),
    family("herald_outbox_oldest_pending_age_seconds", one(age)),
    family("herald_outbox_failed", one(flag(o.failed !== undefined))),
    family("herald_outbox_refusing", one(flag(s.refusing?.active === true))),
    family("herald_outbox_commits_total", one(o.commits)),
    family("herald_outbox_restamped_rows_total", one(o.restampedRows)),
  ];
}

type Sink = BrokerStatus["sinks"][number];

function sinkFamilies(s: BrokerStatus): Family[] {
  // undefined: the sink has no such value (only PUB sockets count subscribers), so no sample.
  const per = (value: (k: Sink) => number | undefined): Samples =>
    s.sinks.flatMap((k): Samples => {
      const v = value(k);
      return v === undefined ? [] : [[{ sink: k.name, kind: k.kind }, v]];
    });
  return [
    family(
      "herald_sink_lag_messages",
      per((k) => k.lag),
    ),
    family(
      "herald_sink_cursor",
      per((k) => k.cursor),
    ),
    family(
      "herald_sink_delivered_total",
      per((k) => k.delivered),
    ),
    family(
      "herald_sink_retries_total",
      per((k) => k.retries),
    ),
    family(
      "herald_sink_skipped_total",
      per((k) => k.skipped),
    ),
    // "blocked" (RabbitMQ's flow control), "down", "starting" and "closed" all deliver nothing now.
    family(
      "herald_sink_up",
      per((k) => flag(k.health.state === "up")),
    ),
    family(
      "herald_sink_subscribers",
      per((k) => k.health.counters["subscribers"]),
    ),
  ];
}

type Source = BrokerStatus["sources"][number];

function sourceFamilies(s: BrokerStatus): Family[] {
  const per = (value: (src: Source) => number): Samples =>
    s.sources.map((src) => [{ source: src.name, kind: src.kind }, value(src)]);
  const count = (name: string): Samples => per((src) => src.counters[name] ?? 0);
  return [
    family(
      "herald_source_waiting_messages",
      per((src) => src.waiting),
    ),
    family("herald_source_ingested_total", count("ingested")),
    family("herald_source_duplicates_total", count("duplicates")),
    family("herald_source_refused_total", count("refused")),
    family("herald_source_retries_total", count("retries")),
    family(
      "herald_source_up",
      per((src) => flag(src.health.state === "up")),
    ),
  ];
}

function submitFamilies(s: BrokerStatus): Family[] {
  const c = s.submit;
  const byCode = Object.entries(c.admissionByCode).map(([code, n]): [Labels, number] => [{ code }, n]);
  return [
    family("herald_submit_requests_total", one(c.requests)),
    family("herald_submit_messages_total", one(c.messages)),
    family("herald_submit_rejected_total", one(c.rejected)),
    family("herald_submit_bad_requests_total", one(c.badRequests)),
    family("herald_submit_paused_total", one(c.paused)),
    family("herald_submit_loops_stopped_total", one(c.loopsStopped)),
    family("herald_submit_admission_rejected_total", byCode),
  ];
}

function processFamilies(s: BrokerStatus): Family[] {
  return [
    family("herald_process_resident_memory_bytes", one(s.memory.rss)),
    family("herald_process_heap_used_bytes", one(s.memory.heapUsed)),
    family("herald_process_external_memory_bytes", one(s.memory.external)),
    family("herald_process_start_time_seconds", one(Date.parse(s.startedAt) / 1000)),
  ];
}

/** `status` (Broker.status()) in Prometheus text format 0.0.4. `nowMs` dates the oldest message's age. */
export function renderMetrics(status: BrokerStatus, nowMs: number = Date.now()): string {
  return [
    ...brokerFamilies(status, nowMs),
    ...sinkFamilies(status),
    ...sourceFamilies(status),
    ...submitFamilies(status),
    ...processFamilies(status),
  ]
    .map(renderFamily)
    .join("");
}
