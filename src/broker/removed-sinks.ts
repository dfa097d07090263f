import { ConfigError } from "../errors.js";
import type { Outbox } from "../storage/outbox.js";
import type { Logger } from "../util/log.js";

type Cursor = { cursor: number; lag: number };

/**
 * A sink's name is its cursor. A cursor no configured sink owns (the sink was renamed, removed, or
 * commented out) would hold back pruning and count towards OUTBOX_FULL forever, so it is dropped: at once
 * when nothing is pending for it, with a backlog only when the operator asked for that (`forget`, from
 * `herald serve --forget-sink NAME`). Otherwise this throws a ConfigError and the broker does not start:
 * those messages were acknowledged, and an admin who fixed a URL and renamed the sink in passing must
 * not lose them to one warning in the log. Runs before anything is dropped or sent.
 */
export function settleRemovedSinks(
  outbox: Outbox,
  opts: { configured: readonly string[]; forget: readonly string[]; log: Logger },
): void {
  const configured = new Set(opts.configured);
  const forget = new Set(opts.forget);
  const { headSeq, sinks } = outbox.stats();
  const clash = [...forget].filter((name) => configured.has(name));
  if (clash.length > 0) throw forgetConfiguredError(clash);
  const removed = Object.entries(sinks).filter(([name]) => !configured.has(name));
  const held = removed.filter(([name, c]) => c.lag > 0 && !forget.has(name));
  if (held.length > 0) throw removedSinkError(held, headSeq);
  for (const [name, { lag }] of removed) {
    outbox.unregisterSink(name);
    if (lag === 0)
      opts.log.info("sink no longer configured, nothing pending for it: its cursor is dropped", {
        sink: name,
      });
    else
      opts.log.warn("sink no longer configured: its cursor and the messages pending for it are dropped", {
        sink: name,
        dropped: lag,
        asked: "--forget-sink",
      });
  }
  for (const name of forget)
    if (sinks[name] === undefined)
      opts.log.info("--forget-sink: no cursor by that name, nothing to drop (remove the option)", {
        sink: name,
      });
}

/** Names each removed sink with its backlog, and both fixes. */
function removedSinkError(held: Array<[string, Cursor]>, head: number): ConfigError {
  const each = held.map(
    ([name, c]) => `'${name}' (${c.lag} messages pending, seq ${c.cursor + 1} to ${head}${shimHint(name)})`,
  );
  const flags = held.map(([name]) => `--forget-sink ${name}`).join(" ");
  return new ConfigError(
    "CONFIG",
    `sink ${each.join(", ")} is no longer configured, but acknowledged messages are still pending for it; ` +
      "herald did not start, so that they are not dropped unnoticed. A sink's name is its cursor: to deliver " +
      "them, put the sink back under the same name (broker.publish[] or sinks[]; a sink under a new name " +
      `starts at the newest message); to drop them knowingly, start once with 'herald serve ${flags}'`,
    { details: { pending: Object.fromEntries(held.map(([name, c]) => [name, c.lag])) } },
  );
}

/** The in-broker migration shim's sink (shim/feed.ts) is no sinks[] item: its settings bring it back. */
function shimHint(name: string): string {
  return name === "legacy-shim"
    ? "; the in-broker migration shim: legacy.enabled and legacy.shimInBroker bring it back"
    : "";
}

function forgetConfiguredError(names: string[]): ConfigError {
  return new ConfigError(
    "CONFIG",
    `--forget-sink ${names.join(", ")}: a sink by that name is configured, and --forget-sink only drops ` +
      "the backlog of a sink removed from the configuration: remove the option (or the sink)",
    { details: { sinks: names } },
  );
}
