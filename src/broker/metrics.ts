/**
 * The optional HTTP endpoint for monitoring (`broker.metrics`, docs/cli.md "Monitoring"):
 * - GET /metrics: Prometheus text format 0.0.4, rendered from `Broker.status()` at scrape time, so the
 *   hot path (submit, dispatch) counts nothing new for it;
 * - GET /livez: 200 while the event loop runs (it answered);
 * - GET /readyz: 200 while the broker accepts messages, its outbox has not failed and is not refusing
 *   messages for lack of room (a full disk, outbox limits reached), else 503 and why.
 * It has no authentication: the defaults leave it off, and docs tell operators to bind loopback.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { listenAddress } from "../config/endpoints.js";
import { ConfigError, HeraldError } from "../errors.js";
import { type Logger, silentLogger } from "../util/log.js";
import type { BrokerStatus } from "./broker.js";

// ---- Rendering: Prometheus text exposition format 0.0.4 ----

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

// ---- The HTTP server ----

/** Probes and scrapes are tiny: a client slower than this is stuck or hostile, and holds a socket. */
const REQUEST_TIMEOUT_MS = 5000;
/** Idle sockets (keep-alive between scrapes, or a reader that stopped reading) are closed after this. */
const SOCKET_IDLE_MS = 10_000;
/** A flood of connections must not take the broker's file descriptors (SQLite, ZeroMQ need them). */
const MAX_CONNECTIONS = 64;

interface Reply {
  code: number;
  body: string;
  headers?: Record<string, string>;
}

export interface MetricsServerOptions {
  /** `HOST:PORT` (broker.metrics). */
  address: string;
  /** The broker (or anything with its status()), read at every request. */
  broker: { status(): BrokerStatus };
  log?: Logger;
}

/** Start the endpoint; rejects with a TRANSPORT error naming the address and the fix when it cannot bind. */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const m = new MetricsServer(opts);
  await m.listen();
  return m;
}

export class MetricsServer {
  private readonly server: Server;
  private readonly host: string;
  private readonly port: number;
  private readonly log: Logger;
  private notReadyReason: string | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: MetricsServerOptions) {
    const parsed = listenAddress(opts.address);
    if ("problem" in parsed)
      throw new ConfigError("CONFIG", `broker.metrics: ${JSON.stringify(opts.address)}: ${parsed.problem}`);
    this.host = parsed.host;
    this.port = parsed.port;
    this.log = opts.log ?? silentLogger;
    this.server = createServer(
      {
        headersTimeout: REQUEST_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        keepAliveTimeout: REQUEST_TIMEOUT_MS,
        // Node checks the two timeouts above only this often (30 s by default): a slow client is cut at ~6 s.
        connectionsCheckingInterval: 1000,
      },
      (req, res) => this.handle(req, res),
    );
    this.server.setTimeout(SOCKET_IDLE_MS); // no 'timeout' listener: Node destroys the idle socket
    this.server.maxConnections = MAX_CONNECTIONS;
  }

  /** The base URL, e.g. `http://127.0.0.1:9479` (the bound port, for tests that ask for port 0). */
  get url(): string {
    const a = this.server.address();
    const port = a !== null && typeof a === "object" ? a.port : this.port;
    return `http://${this.host.includes(":") ? `[${this.host}]` : this.host}:${port}`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen({ host: this.host, port: this.port }, () => {
        this.server.off("error", reject);
        resolve();
      });
    }).catch((err: unknown) => {
      throw bindError(this.opts.address, err);
    });
    // After listening, an error (EMFILE on accept) must be logged, never thrown: it would end the broker.
    this.server.on("error", (err) => this.log.warn("metrics endpoint error", { err: err.message }));
    this.log.info("metrics endpoint listening", { url: `${this.url}/metrics` });
    if (!isLoopback(this.host))
      this.log.warn(
        "broker.metrics listens beyond this host without authentication: bind 127.0.0.1 or firewall the port",
        { address: this.opts.address },
      );
  }

  /** /readyz answers 503 from now on (serve is stopping: take this broker out of rotation). */
  drain(reason = "shutting down"): void {
    this.notReadyReason ??= reason;
  }

  /** Stop listening and cut open connections (a keep-alive scraper must not hold the stop). Idempotent. */
  close(): Promise<void> {
    this.drain();
    this.closing ??= new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    res.on("error", () => {}); // the client went away mid-response: nothing to do
    const r = this.route(req.method ?? "", (req.url ?? "/").split("?")[0] ?? "/");
    // HEAD: Node sends these headers (the GET's Content-Length) and drops the body by itself.
    res.writeHead(r.code, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": String(Buffer.byteLength(r.body)),
      "Cache-Control": "no-store",
      ...r.headers,
    });
    res.end(r.body);
  }

  private route(method: string, path: string): Reply {
    if (path !== "/metrics" && path !== "/livez" && path !== "/readyz")
      return { code: 404, body: "not found: use /metrics, /livez or /readyz\n" };
    if (method !== "GET" && method !== "HEAD")
      return { code: 405, body: "method not allowed: use GET or HEAD\n", headers: { Allow: "GET, HEAD" } };
    if (path === "/livez") return { code: 200, body: "ok\n" };
    if (path === "/readyz") {
      const why = this.whyNotReady();
      return why === undefined ? { code: 200, body: "ok\n" } : { code: 503, body: `not ready: ${why}\n` };
    }
    try {
      const body = renderMetrics(this.opts.broker.status());
      return { code: 200, body, headers: { "Content-Type": METRICS_CONTENT_TYPE } };
    } catch (err) {
      // The broker is not running (stopped, or its outbox closed): an error for the scrape, not a crash.
      return { code: 503, body: `no broker status: ${oneLine(err)}\n` };
    }
  }

  private whyNotReady(): string | undefined {
    if (this.notReadyReason !== undefined) return this.notReadyReason;
    let s: BrokerStatus;
    try {
      s = this.opts.broker.status();
    } catch (err) {
      return `no broker status: ${oneLine(err)}`;
    }
    if (s.outbox.failed !== undefined) return `outbox failed: ${oneLine(s.outbox.failed)}`;
    // A full disk or outbox: every submission gets STORAGE_FULL / OUTBOX_FULL, which clients retry.
    const r = s.refusing;
    if (r?.active)
      return `the outbox refuses new messages since ${r.since} (${r.code}): ${oneLine(r.message)}`;
    if (!s.accepting) return "the broker is not accepting messages";
    return undefined;
  }
}

/** A reason on one line: the probe's body is one line, and a log scraper may read it. */
function oneLine(reason: unknown): string {
  const text = reason instanceof Error ? reason.message : String(reason);
  return text.replace(/\s*\n\s*/g, " ");
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const BIND_FIXES: Readonly<Record<string, string>> = {
  EADDRINUSE:
    "the address is in use (another herald serve or another program listens there): stop it, or set broker.metrics to a free port",
  EADDRNOTAVAIL: "the host is not an address of this machine: use 127.0.0.1, 0.0.0.0 or one of its addresses",
  EACCES: "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE): use a port above 1023",
  ENOTFOUND: "the host name does not resolve: use an IP address such as 127.0.0.1",
  EAI_AGAIN: "the host name does not resolve now (DNS): use an IP address such as 127.0.0.1",
};

function bindError(address: string, err: unknown): HeraldError {
  const code = (err as NodeJS.ErrnoException).code ?? "";
  const why = BIND_FIXES[code] ?? `${oneLine(err)}: check broker.metrics`;
  return new HeraldError("TRANSPORT", `cannot listen on ${address} (broker.metrics): ${why}`, {
    cause: err,
    details: { key: "broker.metrics", address, code },
  });
}
