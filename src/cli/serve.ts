import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Broker } from "../broker/broker.js";
import { buildSource, createBroker } from "../broker/from-config.js";
import { LocalSubmitter, SOURCE_PEER } from "../broker/local-submit.js";
import { type MetricsServer, startMetricsServer } from "../broker/metrics.js";
import { SourceIngest } from "../broker/source-ingest.js";
import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { HeraldError } from "../errors.js";
import { startShim } from "../shim/shim.js";
import type { ShimHandle, ShimOptions } from "../shim/types.js";
import type { Logger } from "../util/log.js";
import { EXIT, noMore, out, parse } from "./args.js";
import { context } from "./context.js";
import { reportError } from "./run.js";

const USAGE = `usage: herald serve [--config FILE] [--forget-sink NAME]...

Run the broker: accept messages on the submit socket, store them durably, publish them on every sink.
With legacy.enabled and legacy.shimInBroker it also runs the fedmsg migration shim (docs/migration.md).
SIGTERM/SIGINT stop it gracefully (clear SHUTTING_DOWN replies, flush, exit within broker.shutdownGrace).
SIGHUP (or a change of the config file) reloads the legacy: section: stage changes apply without a restart.

--forget-sink NAME  drop the messages still pending for sink NAME, which is no longer configured (renamed
                    or removed). Without it such a start is refused (exit 3): a sink's name is its cursor,
                    so put the sink back under that name to deliver them instead.`;

export interface RunningBroker {
  broker: Broker;
  /** The in-broker migration shim, when legacy.enabled && legacy.shimInBroker. */
  shim: ShimHandle | undefined;
  stop(): Promise<void>;
}

/**
 * How long stopping waits for each source ingest before it stops the broker anyway. serve's hard exit
 * comes shutdownGrace + 2 s after the stop began and broker.stop() may use all of shutdownGrace, so the
 * ingests get 1 s of the 2. Cutting an ingest short loses nothing: it acknowledges a message to its
 * source only once the broker stored it, so RabbitMQ redelivers the rest.
 */
const INGEST_STOP_MS = 1000;

/** What a start got running, stopped in reverse order whether the start completed or not. */
interface Parts {
  shim?: ShimHandle | undefined;
  broker?: Broker;
  /** broker.metrics' HTTP endpoint: closed before the broker stops, whose status() it reads. */
  metrics?: MetricsServer;
  ingests: SourceIngest[];
}

async function stopParts(parts: Parts, log: Logger): Promise<void> {
  parts.metrics?.drain(); // /readyz says 503 at once: this broker is on its way out
  // The shim and source ingest first: what they hold in flight is submitted while the broker accepts.
  await Promise.all(parts.ingests.map((i) => stopIngest(i, log)));
  await parts.shim?.stop();
  await parts.metrics?.close();
  await parts.broker?.stop();
}

async function stopIngest(ingest: SourceIngest, log: Logger): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((r) => {
    timer = setTimeout(() => r("late"), INGEST_STOP_MS);
  });
  const stopped = ingest.stop().then(
    () => "stopped" as const,
    (err: unknown) => log.warn("source ingest stopped with an error", { err }),
  );
  if ((await Promise.race([stopped, late])) === "late")
    log.warn("source ingest still stopping: stopping the broker anyway (the source redelivers)", {
      source: ingest.status().name,
    });
  clearTimeout(timer);
}

/**
 * Start the shim (when configured), the broker and the source ingests. If any of them fails, or
 * `signal` aborts meanwhile (a SIGTERM, a fail-stop), what did start is stopped before this rejects: a
 * broker left running would go on acknowledging messages in a process that is on its way out.
 */
export async function startBroker(
  config: HeraldConfig,
  log: Logger,
  onFatal?: (err: HeraldError) => void,
  shimOptions: ShimOptions = {},
  signal?: AbortSignal,
  forgetSinks: string[] = [],
): Promise<RunningBroker> {
  const parts: Parts = { ingests: [] };
  try {
    const broker = await startParts(config, log, parts, { shimOptions, onFatal, signal, forgetSinks });
    return { broker, shim: parts.shim, stop: () => stopParts(parts, log) };
  } catch (err) {
    // The start's own error is the one to report, not a second one from stopping.
    await stopParts(parts, log).catch((e: unknown) =>
      log.error("stopping after a failed start failed", { err: e }),
    );
    // An abort interrupts whatever was starting with that step's own error: report why it was aborted.
    throw signal?.aborted ? signal.reason : err;
  }
}

async function startParts(
  config: HeraldConfig,
  log: Logger,
  parts: Parts,
  opts: {
    shimOptions: ShimOptions;
    onFatal: ((err: HeraldError) => void) | undefined;
    signal: AbortSignal | undefined;
    forgetSinks: string[];
  },
): Promise<Broker> {
  const { signal } = opts;
  // The shim and source ingest submit in-process; the shim starts (and reads legacy publishers) before
  // the broker exists, whose sinks include the shim's: until then its submits are retried.
  const local = new LocalSubmitter(() => parts.broker);
  // In-process feed: the shim is a sink with its own durable outbox cursor, so bridged ports miss nothing.
  if (config.legacy.enabled && config.legacy.shimInBroker)
    parts.shim = await startShim(config, log.child("shim"), {
      submitter: local,
      ...opts.shimOptions,
      feed: "sink",
    });
  signal?.throwIfAborted();
  const onFatal = (err: HeraldError): void => opts.onFatal?.(err);
  const { forgetSinks } = opts;
  const broker = createBroker(config, log, { onFatal, forgetSinks }, parts.shim ? [parts.shim.sink] : []);
  // Bound before the broker starts: a port in use fails the start before anything was acknowledged.
  // Until the broker runs, /readyz answers 503.
  const address = config.broker.metrics;
  if (address !== null)
    parts.metrics = await startMetricsServer({ address, broker, log: log.child("metrics") });
  await broker.start(); // a failed start closes what it opened itself
  parts.broker = broker;
  signal?.throwIfAborted();
  // Their own peer: a queue held what they submit while this broker was down (no age limit, security.ts).
  await startSourceIngests(
    config,
    log,
    new LocalSubmitter(() => parts.broker, SOURCE_PEER),
    parts.ingests,
    signal,
  );
  broker.reportSources(() => parts.ingests.map((i) => i.status()));
  return broker;
}

/**
 * Sources with `ingest: true` (AMQP queues, e.g. fedora-messaging traffic) feed the local broker. Each
 * joins `into` before it starts, so that a failed start (refused credentials) closes it too.
 */
async function startSourceIngests(
  config: HeraldConfig,
  log: Logger,
  local: LocalSubmitter,
  into: SourceIngest[],
  signal: AbortSignal | undefined,
): Promise<void> {
  for (const s of config.sources.filter((x) => x.ingest)) {
    const ingest = new SourceIngest(
      buildSource(config, s.name, log),
      s.bindings,
      local,
      log.child(`ingest.${s.name}`),
    );
    into.push(ingest);
    // stop() cuts a start short that waits on a server accepting TCP but never answering AMQP.
    const abort = (): void => void ingest.stop();
    signal?.addEventListener("abort", abort, { once: true });
    try {
      await ingest.start();
    } finally {
      signal?.removeEventListener("abort", abort);
    }
    signal?.throwIfAborted();
  }
}

/** `<runtimeDir>/herald.pid`: `herald cutover` sends SIGHUP here after editing the config file. */
export function pidFile(config: HeraldConfig): string {
  return join(config.paths.runtimeDir, "herald.pid");
}

export function writePidFile(config: HeraldConfig): () => void {
  const file = pidFile(config);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${process.pid}\n`);
  return () => {
    try {
      if (existsSync(file) && readFileSync(file, "utf8").trim() === String(process.pid)) rmSync(file);
    } catch {
      // best effort
    }
  };
}

/**
 * Refuse to start when the pid file names another live herald: overwriting it would send `herald
 * cutover`'s SIGHUP to the wrong process, and this one's exit would delete the other's pid file. A
 * file left by a crash (no such process, or one that is not herald) is taken over.
 */
export function refuseLivePidFile(config: HeraldConfig): void {
  const file = pidFile(config);
  let pid: number;
  try {
    pid = Number(readFileSync(file, "utf8").trim());
  } catch {
    return; // no pid file
  }
  if (!isLiveHerald(pid)) return;
  throw new HeraldError(
    "CONFIG",
    `${file} names herald process ${pid}, which is running: stop it, or give this one another paths.runtimeDir`,
  );
}

function isLiveHerald(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false; // ESRCH: no such process
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("herald");
  } catch {
    return true; // alive, but /proc does not say what it is: do not take its file
  }
}

/** The exit code of a fail-stop: storage (5) or the ZAP guard of CURVE sockets (6). */
function fatalExit(err: HeraldError): number {
  if (err.code.startsWith("STORAGE")) return EXIT.storage;
  if (err.code === "SECURITY") return EXIT.security;
  return EXIT.failed;
}

/**
 * The one stop of `herald serve`, whoever asks first (SIGTERM/SIGINT, a fail-stop) and whenever: while
 * the broker starts, the request aborts the start (which stops what started); after, it stops the running
 * broker. Either way a hard deadline (shutdownGrace + 2 s) ends the process if stopping hangs.
 */
class ServeStop {
  private readonly starting = new AbortController();
  private requested = false;
  private fatal: HeraldError | undefined;
  private running: RunningBroker | undefined;
  private finish: (code: number) => void = () => {};
  readonly done = new Promise<number>((r) => {
    this.finish = r;
  });
  removePid = (): void => {};

  constructor(
    private readonly graceMs: number,
    private readonly log: Logger,
  ) {}

  /** Aborted once a stop is requested during start. */
  get signal(): AbortSignal {
    return this.starting.signal;
  }

  get wasRequested(): boolean {
    return this.requested;
  }

  /** Exit code of a stop as asked: 0 for a signal, the fail-stop's own code after a fatal error. */
  get code(): number {
    return this.fatal ? fatalExit(this.fatal) : EXIT.ok;
  }

  /** A signal's name, or the fail-stop's error (its code is the reason logged). */
  request(reason: string | HeraldError): void {
    const fatal = typeof reason === "string" ? undefined : reason;
    const why = typeof reason === "string" ? reason : reason.code;
    // A fatal error during a signalled stop still decides the exit code.
    if (fatal) this.fatal ??= fatal;
    if (this.requested) return;
    this.requested = true;
    this.log.info("stopping", fatal ? { fatal: why } : { signal: why });
    const hard = setTimeout(() => {
      this.removePid();
      process.exit(this.fatal ? fatalExit(this.fatal) : EXIT.failed);
    }, this.graceMs + 2000);
    hard.unref();
    this.starting.abort(new HeraldError("SHUTTING_DOWN", `stopped while starting (${why})`));
    if (this.running) this.stopRunning(this.running);
  }

  /** The start completed: stop it at once if a stop was asked meanwhile; resolves with the exit code. */
  run(running: RunningBroker): Promise<number> {
    this.running = running;
    if (this.requested) this.stopRunning(running);
    return this.done;
  }

  private stopRunning(running: RunningBroker): void {
    void running
      .stop()
      .then(
        () => this.code,
        (err: unknown) => {
          this.log.error("stopping failed", { err });
          return this.fatal ? fatalExit(this.fatal) : EXIT.failed;
        },
      )
      .then((code) => {
        this.removePid();
        this.finish(code);
      });
  }
}

export async function serve(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { "forget-sink": { type: "string", multiple: true } }, USAGE);
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  noMore(positionals, USAGE);
  const ctx = context(values.config);
  const reloadConfig = (): HeraldConfig =>
    loadConfig(values.config === undefined ? {} : { configPath: values.config }).config;
  const stop = new ServeStop(ctx.config.broker.shutdownGrace, ctx.log);
  const hup = listenForSignals(stop);
  const withShim = ctx.config.legacy.enabled && ctx.config.legacy.shimInBroker;
  // Checked before anything starts; written once the shim runs (SIGHUP before then is remembered).
  if (withShim) refuseLivePidFile(ctx.config);
  let running: RunningBroker;
  try {
    running = await startBroker(
      ctx.config,
      ctx.log,
      (err) => stop.request(err),
      ctx.file ? { watch: { file: ctx.file, load: reloadConfig } } : {},
      stop.signal,
      values["forget-sink"] ?? [],
    );
  } catch (err) {
    // Stopped while starting: what started is stopped; a fail-stop still exits with its code.
    if (stop.wasRequested && (err === stop.signal.reason || stop.code !== EXIT.ok)) return stop.code;
    // The outbox could not be opened (damaged and moved aside, in use, unreadable, disk full): the storage
    // exit code, as for a fail-stop once running, so that one alert covers both.
    if (err instanceof HeraldError && err.code.startsWith("STORAGE")) {
      reportError(err);
      return EXIT.storage;
    }
    throw err;
  }
  if (withShim) stop.removePid = writePidFile(ctx.config);
  ctx.log.info("config", { file: ctx.file ?? "(defaults)" });
  hup.reloadWith(() => reloadShim(running, reloadConfig, ctx.log));
  return stop.run(running);
}

/**
 * Listening before the broker starts: a SIGTERM that arrives while it starts would otherwise meet Node's
 * default action and kill the process mid-start; now it aborts the start. SIGHUP's default action ends
 * the process too: one during start-up (a crash recovery can take seconds) is remembered and applied
 * once there is something to reload.
 */
function listenForSignals(stop: ServeStop): { reloadWith(reload: () => void): void } {
  process.on("SIGTERM", () => stop.request("SIGTERM"));
  process.on("SIGINT", () => stop.request("SIGINT"));
  let reload: (() => void) | undefined;
  let hupEarly = false;
  process.on("SIGHUP", () => {
    if (reload) reload();
    else hupEarly = true;
  });
  return {
    reloadWith(fn) {
      reload = fn;
      if (hupEarly) fn();
    },
  };
}

/** SIGHUP: reload the legacy: section of the running shim (other changes need a restart). */
function reloadShim(running: RunningBroker, load: () => HeraldConfig, log: Logger): void {
  if (!running.shim) {
    log.info("SIGHUP: nothing to reload (the shim is not running in this process)");
    return;
  }
  log.info("SIGHUP: reloading the legacy: section (other changes need a restart)");
  try {
    void running.shim
      .reload(load())
      .catch((err: unknown) => log.error("reload failed", { err: (err as Error).message }));
  } catch (err) {
    log.error("reload failed; keeping the running stages", { err: (err as Error).message });
  }
}
