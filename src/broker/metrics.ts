/**
 * The optional HTTP endpoint for monitoring (`broker.metrics`, docs/cli.md "Monitoring"):
 * - GET /metrics: Prometheus text format 0.0.4, rendered from `Broker.status()` at scrape time
 *   (prometheus-text.ts), so the hot path (submit, dispatch) counts nothing new for it;
 * - GET /livez: 200 while the event loop runs (it answered);
 * - GET /readyz: 200 while the broker accepts messages, its outbox has not failed and is not refusing
 *   messages for lack of room (a full disk, outbox limits reached), else 503 and why.
 * It has no authentication: the defaults leave it off, and docs tell operators to bind loopback.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { listenAddress } from "../config/endpoints.js";
import { ConfigError, HeraldError } from "../errors.js";
import { type Logger, silentLogger } from "../util/log.js";
import type { BrokerStatus } from "./broker.js";
import { METRICS_CONTENT_TYPE, renderMetrics } from "./prometheus-text.js";

export { escapeLabelValue, METRICS_CONTENT_TYPE, renderMetrics } from "./prometheus-text.js";

/** Probes and scrapes are tiny: a client slower than this is stuck or hostile, and holds a socket. */
const REQUEST_TIMEOUT_MS = 5000;
/** Idle sockets (keep-alive between scrapes, or a reader that stopped reading) are closed after this. */
const SOCKET_IDLE_MS = 10_000;
/**
 * A flood of connections must not take the broker's file descriptors (SQLite, ZeroMQ need them). At the
 * cap the oldest connection is cut to let the new one in, rather than the new one refused: a client that
 * keeps 64 slow connections open would otherwise hold every health probe out (and a liveness probe that
 * cannot connect restarts a healthy broker). A probe sends its request at once and is answered within
 * milliseconds, so it is never the oldest for long.
 */
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
  /** Open connections, oldest first (a Set keeps insertion order). */
  private readonly open = new Set<Socket>();

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
    this.server.on("connection", (socket: Socket) => this.admit(socket));
  }

  private admit(socket: Socket): void {
    if (this.open.size >= MAX_CONNECTIONS) {
      const oldest = this.open.values().next().value;
      if (oldest !== undefined) {
        this.open.delete(oldest);
        oldest.destroy();
      }
    }
    this.open.add(socket);
    socket.once("close", () => this.open.delete(socket));
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
