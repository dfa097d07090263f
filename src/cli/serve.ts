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
import { EXIT, out, parse } from "./args.js";
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
  const { values } = parse(argv, {}, USAGE);
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
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
  const running = await startBroker(
    ctx.config,
    ctx.log,
    () => {
      fatal = true;
      void running.stop().finally(() => process.exit(EXIT.storage));
    },
    ctx.file ? { watch: { file: ctx.file, load: reloadConfig } } : {},
  );
  const removePid = running.shim ? writePidFile(ctx.config) : () => {};
  ctx.log.info("config", { file: ctx.file ?? "(defaults)" });
  process.on("SIGHUP", () => {
    if (!running.shim) {
      ctx.log.info("SIGHUP: nothing to reload (the shim is not running in this process)");
      return;
    }
    ctx.log.info("SIGHUP: reloading the legacy: section (other changes need a restart)");
    try {
      void running.shim
        .reload(reloadConfig())
        .catch((err: unknown) => ctx.log.error("reload failed", { err: (err as Error).message }));
    } catch (err) {
      ctx.log.error("reload failed; keeping the running stages", { err: (err as Error).message });
    }
  });
  return new Promise<number>((resolve) => {
    let stopping = false;
    stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      ctx.log.info("stopping", { signal });
      const hard = setTimeout(() => process.exit(EXIT.failed), ctx.config.broker.shutdownGrace + 2000);
      hard.unref();
      void running.stop().then(() => {
        removePid();
        resolve(fatal ? EXIT.storage : EXIT.ok);
      });
    };
    if (early !== undefined) stop(early);
  });
}
