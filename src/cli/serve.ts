import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Broker } from "../broker/broker.js";
import { buildSource, createBroker } from "../broker/from-config.js";
import { LocalSubmitter } from "../broker/local-submit.js";
import { SourceIngest } from "../broker/source-ingest.js";
import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { startShim } from "../shim/shim.js";
import type { ShimHandle, ShimOptions } from "../shim/types.js";
import type { Logger } from "../util/log.js";
import { EXIT, noMore, out, parse } from "./args.js";
import { context } from "./context.js";

const USAGE = `usage: herald serve [--config FILE]

Run the broker: accept messages on the submit socket, store them durably, publish them on every sink.
With legacy.enabled and legacy.shimInBroker it also runs the fedmsg migration shim (docs/migration.md).
SIGTERM/SIGINT stop it gracefully (clear SHUTTING_DOWN replies, flush, exit within broker.shutdownGrace).
SIGHUP (or a change of the config file) reloads the legacy: section: stage changes apply without a restart.`;

export interface RunningBroker {
  broker: Broker;
  /** The in-broker migration shim, when legacy.enabled && legacy.shimInBroker. */
  shim: ShimHandle | undefined;
  stop(): Promise<void>;
}

export async function startBroker(
  config: HeraldConfig,
  log: Logger,
  onFatal?: () => void,
  shimOptions: ShimOptions = {},
): Promise<RunningBroker> {
  const withShim = config.legacy.enabled && config.legacy.shimInBroker;
  // The shim and source ingest submit in-process; the shim starts (and reads legacy publishers) before
  // the broker exists, whose sinks include the shim's: until then its submits are retried.
  let started: Broker | undefined;
  const local = new LocalSubmitter(() => started);
  // In-process feed: the shim is a sink with its own durable outbox cursor, so bridged ports miss nothing.
  const shim = withShim
    ? await startShim(config, log.child("shim"), { submitter: local, ...shimOptions, feed: "sink" })
    : undefined;
  const broker = createBroker(
    config,
    log,
    {
      onFatal: () => {
        onFatal?.();
      },
    },
    shim ? [shim.sink] : [],
  );
  try {
    await broker.start();
  } catch (err) {
    await shim?.stop();
    throw err;
  }
  started = broker;
  const ingests = await startSourceIngests(config, log, local);
  broker.reportSources(() => ingests.map((i) => i.status()));
  return {
    broker,
    shim,
    stop: async () => {
      // Stop the shim and source ingest first: what they hold in flight is submitted while the broker accepts.
      await Promise.all(ingests.map((i) => i.stop()));
      await shim?.stop();
      await broker.stop();
    },
  };
}

/** Sources with `ingest: true` (AMQP queues, e.g. fedora-messaging traffic) feed the local broker. */
async function startSourceIngests(
  config: HeraldConfig,
  log: Logger,
  local: LocalSubmitter,
): Promise<SourceIngest[]> {
  const out: SourceIngest[] = [];
  for (const s of config.sources.filter((x) => x.ingest)) {
    const ingest = new SourceIngest(
      buildSource(config, s.name, log),
      s.bindings,
      local,
      log.child(`ingest.${s.name}`),
    );
    await ingest.start();
    out.push(ingest);
  }
  return out;
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

export async function serve(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {}, USAGE);
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  noMore(positionals, USAGE);
  const ctx = context(values.config);
  const reloadConfig = (): HeraldConfig =>
    loadConfig(values.config === undefined ? {} : { configPath: values.config }).config;
  let fatal = false;
  // Listening before the broker starts: a SIGTERM that arrives once the submit socket answers but before
  // startBroker returned would otherwise meet Node's default action and kill the process mid-start.
  let stop: ((signal: string) => void) | undefined;
  let early: string | undefined;
  const onSignal = (signal: string): void => {
    if (stop) stop(signal);
    else early ??= signal;
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  // SIGHUP's default action ends the process too: one during start-up (a crash recovery can take seconds)
  // is remembered and applied once the shim runs.
  let reload: (() => void) | undefined;
  let hupEarly = false;
  process.on("SIGHUP", () => {
    if (reload) reload();
    else hupEarly = true;
  });
  let removePid = (): void => {};
  const running = await startBroker(
    ctx.config,
    ctx.log,
    () => {
      fatal = true;
      void running.stop().finally(() => {
        removePid();
        process.exit(EXIT.storage);
      });
    },
    ctx.file ? { watch: { file: ctx.file, load: reloadConfig } } : {},
  );
  removePid = running.shim ? writePidFile(ctx.config) : () => {};
  ctx.log.info("config", { file: ctx.file ?? "(defaults)" });
  reload = () => reloadShim(running, reloadConfig, ctx.log);
  if (hupEarly) reload();
  return new Promise<number>((resolve) => {
    let stopping = false;
    stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      ctx.log.info("stopping", { signal });
      const hard = setTimeout(() => {
        removePid();
        process.exit(EXIT.failed);
      }, ctx.config.broker.shutdownGrace + 2000);
      hard.unref();
      void running.stop().then(() => {
        removePid();
        resolve(fatal ? EXIT.storage : EXIT.ok);
      });
    };
    if (early !== undefined) stop(early);
  });
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
