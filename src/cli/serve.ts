import type { Broker } from "../broker/broker.js";
import { createBroker } from "../broker/from-config.js";
import type { HeraldConfig } from "../config/schema.js";
import type { Logger } from "../util/log.js";
import { EXIT, out, parse } from "./args.js";
import { context } from "./context.js";

const USAGE = `usage: herald serve [--config FILE]

Run the broker: accept messages on the submit socket, store them durably, publish them on every sink.
SIGTERM/SIGINT stop it gracefully (clear SHUTTING_DOWN replies, flush, exit within broker.shutdownGrace).`;

export interface RunningBroker {
  broker: Broker;
  stop(): Promise<void>;
}

export async function startBroker(
  config: HeraldConfig,
  log: Logger,
  onFatal?: () => void,
): Promise<RunningBroker> {
  const broker = createBroker(config, log, {
    onFatal: () => {
      onFatal?.();
    },
  });
  await broker.start();
  return { broker, stop: () => broker.stop() };
}

export async function serve(argv: string[]): Promise<number> {
  const { values } = parse(argv, {}, USAGE);
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  const ctx = context(values.config);
  let fatal = false;
  const running = await startBroker(ctx.config, ctx.log, () => {
    fatal = true;
    void running.stop().finally(() => process.exit(EXIT.storage));
  });
  ctx.log.info("config", { file: ctx.file ?? "(defaults)" });
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      ctx.log.info("stopping", { signal });
      const hard = setTimeout(() => process.exit(EXIT.failed), ctx.config.broker.shutdownGrace + 2000);
      hard.unref();
      void running.stop().then(() => resolve(fatal ? EXIT.storage : EXIT.ok));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
  });
}
