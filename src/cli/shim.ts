import { loadConfig } from "../config/load.js";
import type { HeraldConfig } from "../config/schema.js";
import { startShim } from "../shim/shim.js";
import { EXIT, noMore, out, parse } from "./args.js";
import { context } from "./context.js";
import { refuseLivePidFile, writePidFile } from "./serve.js";

const USAGE = `usage: herald shim [--config FILE]

Run the fedmsg migration shim in its own process (legacy.shimInBroker: false): ingest legacy services into
the broker, serve bridged services' old ports from the broker's herald PUB socket, record who listens.
SIGHUP (or a change of the config file) reloads the legacy: section; SIGTERM/SIGINT stop it.`;

export async function shim(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {}, USAGE);
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  noMore(positionals, USAGE);
  const ctx = context(values.config);
  const load = (): HeraldConfig =>
    loadConfig(values.config === undefined ? {} : { configPath: values.config }).config;
  if (ctx.config.legacy.enabled && ctx.config.legacy.shimInBroker)
    ctx.log.warn("legacy.shimInBroker is true: `herald serve` runs the shim too; run only one of them");
  // Before the shim binds anything: afterwards a refusal would leave its sockets holding the process.
  refuseLivePidFile(ctx.config);
  const handle = await startShim(ctx.config, ctx.log.child("shim"), {
    feed: "subscribe",
    ...(ctx.file ? { watch: { file: ctx.file, load } } : {}),
  });
  const removePid = writePidFile(ctx.config);
  process.on("SIGHUP", () => {
    ctx.log.info("SIGHUP: reloading the legacy: section");
    try {
      void handle
        .reload(load())
        .catch((err: unknown) => ctx.log.error("reload failed", { err: (err as Error).message }));
    } catch (err) {
      ctx.log.error("reload failed; keeping the running stages", { err: (err as Error).message });
    }
  });
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      ctx.log.info("stopping", { signal });
      void handle.stop().then(() => {
        removePid();
        resolve(EXIT.ok);
      });
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
