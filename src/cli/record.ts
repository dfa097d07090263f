import { createClient, subscribe } from "../client/index.js";
import { Recorder, readCassette } from "../testing/recording.js";
import type { Message } from "../wire/message.js";
import { EXIT, out, parse, UsageError } from "./args.js";
import { context } from "./context.js";

const RECORD_USAGE = `usage: herald record FILE [PATTERN...] [--format herald|legacy|both] [--count N]

Append every matching message to FILE as JSON lines with the exact bytes received (a cassette).`;

const REPLAY_USAGE = `usage: herald replay FILE [--endpoint E] [--new-ids]

Submit every message of a cassette to the broker again. Ids are kept (the broker's dedup window then drops
messages it already has); --new-ids gives each a fresh id so tests can replay the same traffic again.`;

export async function record(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { format: { type: "string", default: "herald" }, count: { type: "string" } },
    RECORD_USAGE,
  );
  if (values.help) {
    out(RECORD_USAGE);
    return EXIT.ok;
  }
  const [file, ...patterns] = positionals;
  if (!file) throw new UsageError(`FILE is required\n\n${RECORD_USAGE}`);
  const f = values.format;
  if (f !== "herald" && f !== "legacy" && f !== "both")
    throw new UsageError("--format is herald, legacy or both");
  const limit = values.count === undefined ? Number.POSITIVE_INFINITY : Number(values.count);
  if (!(limit > 0)) throw new UsageError("--count takes a positive number");
  const ctx = context(values.config);
  const rec = new Recorder(file); // before any socket: a path that cannot be written fails at once
  const sub = subscribe(patterns, {
    config: ctx.config,
    formats: f === "both" ? ["herald", "legacy"] : [f],
    log: ctx.log,
  });
  const stop = (): void => void sub.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  for await (const m of sub) {
    rec.write(m);
    if (rec.count >= limit) break;
  }
  await sub.close();
  await rec.close();
  process.stderr.write(`recorded ${rec.count} messages to ${file}\n`);
  return EXIT.ok;
}

export async function replay(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { endpoint: { type: "string", short: "e" }, "new-ids": { type: "boolean" } },
    REPLAY_USAGE,
  );
  if (values.help) {
    out(REPLAY_USAGE);
    return EXIT.ok;
  }
  const [file] = positionals;
  if (!file) throw new UsageError(`FILE is required\n\n${REPLAY_USAGE}`);
  const ctx = context(values.config);
  const client = createClient({
    config: ctx.config,
    ...(values.endpoint ? { endpoint: values.endpoint } : {}),
  });
  const { newId } = await import("../wire/message.js");
  let sent = 0;
  let refused = 0;
  const batch: Message[] = [];
  const flush = async (): Promise<void> => {
    for (const r of await client.submit(batch.splice(0))) {
      if (r instanceof Error) {
        refused++;
        process.stderr.write(`refused: ${r.message}\n`);
      } else sent++;
    }
  };
  try {
    for await (const { message } of readCassette(file)) {
      const { seq: _s, stream: _t, via: _v, ...rest } = message;
      batch.push(values["new-ids"] ? { ...rest, id: newId() } : rest);
      if (batch.length >= 500) await flush();
    }
    await flush();
  } finally {
    await client.close();
  }
  out(`replayed ${sent} messages${refused ? `, ${refused} refused` : ""}`);
  return refused > 0 ? EXIT.failed : EXIT.ok;
}
