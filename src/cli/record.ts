import { createClient, subscribe } from "../client/index.js";
import { HeraldError } from "../errors.js";
import { Recorder, readCassette } from "../testing/recording.js";
import type { Message } from "../wire/message.js";
import { EXIT, out, parse, UsageError } from "./args.js";
import { context } from "./context.js";

const RECORD_USAGE = `usage: herald record FILE [PATTERN...] [--format herald|legacy|both] [--count N]

Append every matching message to FILE as JSON lines with the exact bytes received (a cassette).`;

const REPLAY_USAGE = `usage: herald replay FILE [--endpoint E] [--new-ids]

Submit every message of a cassette to the broker again. Ids are kept (the broker's dedup window then drops
messages it already has); --new-ids gives each a fresh id so tests can replay the same traffic again.
The whole cassette is read first: a bad line (named FILE:LINE) sends nothing.`;

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
  // Before any socket: a path that cannot be written fails at once. A write failing later (a full disk)
  // stops the subscription, so the loop ends and close() reports the error naming the file.
  const rec = new Recorder(file, { onError: () => void sub.close() });
  const sub = subscribe(patterns, {
    config: ctx.config,
    formats: f === "both" ? ["herald", "legacy"] : [f],
    log: ctx.log,
  });
  const stop = (): void => void sub.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    for await (const m of sub) {
      rec.write(m);
      if (rec.count >= limit) break;
    }
  } finally {
    await sub.close();
    await rec.close();
  }
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
  // The whole cassette is read and checked before anything is sent: a bad line (named file:line) then
  // sends nothing, rather than the part before it. Cassettes are test traffic, small enough to hold.
  const messages = await loadCassette(file, values["new-ids"] ?? false);
  const client = createClient({
    config: ctx.config,
    ...(values.endpoint ? { endpoint: values.endpoint } : {}),
  });
  let sent = 0;
  // Acknowledged as duplicates: the broker already had the id (its dedup window) and published nothing.
  let duplicates = 0;
  let refused = 0;
  try {
    for (let i = 0; i < messages.length; i += 500) {
      const results = await client.submit(messages.slice(i, i + 500)).catch((err: unknown) => {
        throw partly(err, sent + duplicates + refused, messages.length);
      });
      for (const r of results) {
        if (r instanceof Error) {
          refused++;
          process.stderr.write(`refused: ${r.message}\n`);
        } else if (r.duplicate) duplicates++;
        else sent++;
      }
    }
  } finally {
    await client.close();
  }
  out(replaySummary(sent, duplicates, refused));
  return refused > 0 ? EXIT.failed : EXIT.ok;
}

/** The replay's one line: duplicates are counted apart, since the broker published none of them again. */
export function replaySummary(sent: number, duplicates: number, refused: number): string {
  const failed = refused ? `, ${refused} refused` : "";
  if (duplicates === 0) return `replayed ${sent} messages${failed}`;
  return `replayed ${sent} new, ${duplicates} already stored (duplicate ids: the broker published them before; use --new-ids to send copies)${failed}`;
}

/** A cassette's messages as the broker takes them: without the stamps of the broker that sent them. */
async function loadCassette(file: string, newIds: boolean): Promise<Message[]> {
  const { newId } = await import("../wire/message.js");
  const messages: Message[] = [];
  for await (const { message } of readCassette(file)) {
    const { seq: _s, stream: _t, via: _v, ...rest } = message;
    messages.push(newIds ? { ...rest, id: newId() } : rest);
  }
  return messages;
}

/** The submit error, saying how far the replay got (the broker kept what it acknowledged before). */
function partly(err: unknown, done: number, total: number): unknown {
  if (!(err instanceof HeraldError)) return err;
  return new HeraldError(err.code, `${err.message} (replay stopped after ${done} of ${total} messages)`, {
    cause: err,
    retryable: err.retryable,
    details: err.details,
  });
}
