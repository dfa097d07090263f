import { buildSource } from "../broker/from-config.js";
import { subscribe } from "../client/index.js";
import type { ReceivedMessage } from "../client/subscriber.js";
import { Subscriber, type SubscriberOptions } from "../client/subscriber.js";
import { TrustStore } from "../security/trust.js";
import { encodeHeraldFrames } from "../wire/herald.js";
import { legacyEnvelopeText } from "../wire/legacy.js";
import { EXIT, out, parse, UsageError } from "./args.js";
import { context } from "./context.js";

const USAGE = `usage: herald tail [PATTERN...] [--json] [--format herald|legacy|both] [--endpoint E ...] [--count N]
                   [--source NAME]  (read a configured AMQP source instead of the broker's PUB sockets) [--verify]

Print every message matching the AMQP-style patterns (\`*\` one word, \`#\` any words; default \`#\`), one
readable line each. --json prints the herald envelope (or, with --format legacy, the fedmsg envelope).
--verify checks every message's signature against security.trustDir (end to end, trusting no relay):
messages that fail (or are unsigned) are not printed; each is reported on stderr with its error code.
Verified lines show the signer (and "vouched legacy" for messages the shim ingested from fedmsg), with
--source too. --endpoint replaces the PUB sockets of the one --format asked for; it cannot be combined
with --format both (an endpoint is either a herald or a legacy socket), nor either with --source.`;

export async function tail(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      json: { type: "boolean" },
      format: { type: "string" },
      endpoint: { type: "string", multiple: true },
      count: { type: "string" },
      verify: { type: "boolean" },
      source: { type: "string", short: "s" },
    },
    USAGE,
  );
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  if (values.source && (values.endpoint || values.format !== undefined))
    throw new UsageError(
      "--source reads a configured AMQP source: --endpoint and --format apply to the broker's PUB sockets only",
    );
  const format = values.format ?? "herald";
  if (format !== "herald" && format !== "legacy" && format !== "both")
    throw new UsageError(`--format is herald, legacy or both, not '${format}'`);
  const count = parseCount(values.count);
  if (format === "both" && values.endpoint)
    throw new UsageError(
      "--endpoint with --format both: an endpoint is either a herald or a legacy PUB socket; " +
        "run one tail per format, each with its own --endpoint",
    );
  const ctx = context(values.config);
  const formats: Array<"herald" | "legacy"> = format === "both" ? ["herald", "legacy"] : [format];
  const trust = values.verify
    ? new TrustStore(ctx.config.security.trustDir, {
        reloadInterval: ctx.config.security.reloadInterval,
      }).start()
    : undefined;
  // The same verification whichever way messages arrive: an AMQP source is no more trusted than a socket.
  const checks: Pick<SubscriberOptions, "verify" | "onRejected"> = trust
    ? {
        verify: { trust, requireSignature: true },
        onRejected: (d, e) =>
          process.stderr.write(
            `herald tail: dropped ${d.message.id} ${d.message.topic}: ${e.code}: ${e.message}\n`,
          ),
      }
    : {};
  const sub = values.source
    ? new Subscriber({
        sources: [buildSource(ctx.config, values.source, ctx.log)],
        patterns: positionals,
        log: ctx.log,
        ownsSources: true,
        ...checks,
      })
    : subscribe(positionals, {
        ...checks,
        config: ctx.config,
        formats,
        log: ctx.log,
        ...(values.endpoint ? { endpoints: { [formats[0]!]: values.endpoint } } : {}),
      });
  const stop = (): void => void sub.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const hint = hintIfUnconnected(sub, (text) => process.stderr.write(text));
  let seen = 0;
  // The Nth message is acked (AMQP) before breaking out, which acks nothing; those read ahead stay queued.
  for await (const m of sub) {
    out(values.json ? asJson(m, format) : line(m));
    if (++seen >= count) {
      await m.ack();
      break;
    }
  }
  clearTimeout(hint);
  await sub.close();
  trust?.stop();
  return EXIT.ok;
}

function parseCount(text: string | undefined): number {
  if (text === undefined) return Number.POSITIVE_INFINITY;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < 1)
    throw new UsageError(`--count takes a whole number of messages (1 or more), not '${text}'`);
  return n;
}

/** How long a tail may go without a connection before it says so (a quiet bus prints nothing either). */
export const HINT_AFTER_MS = 5000;

/**
 * A tail at a dead endpoint would wait silently forever, like one on a quiet bus: after `afterMs`, name
 * the sources not connected yet on stderr (they keep retrying). Once; the timer does not hold the process.
 */
export function hintIfUnconnected(
  sub: Pick<Subscriber, "sourceHealth">,
  write: (text: string) => void,
  afterMs = HINT_AFTER_MS,
): NodeJS.Timeout {
  const timer = setTimeout(() => {
    const down = sub.sourceHealth().filter((s) => s.health.state === "starting" || s.health.state === "down");
    if (down.length === 0) return;
    const what = down
      .map((s) => {
        const where = s.endpoints ? s.endpoints.join(", ") : `source '${s.name}'`;
        return `${where}${s.health.lastError ? ` (${s.health.lastError})` : ""}`;
      })
      .join(", ");
    write(
      `herald tail: not connected to ${what} after ${afterMs / 1000} s, still trying: is the broker running (herald status) and is this the right endpoint or source?\n`,
    );
  }, afterMs);
  timer.unref();
  return timer;
}

function line(m: ReceivedMessage): string {
  const body = JSON.stringify(m.message.body);
  const short = body.length > 120 ? `${body.slice(0, 117)}...` : body;
  const who = m.signer === undefined ? "" : ` signer=${m.signer}${m.vouched ? ` vouched ${m.vouched}` : ""}`;
  return `${m.message.sentAt} ${m.message.topic} ${m.message.id} [${m.format}]${who} ${short}`;
}

function asJson(m: ReceivedMessage, format: string): string {
  // The bytes as they travelled, when they are in the asked-for format (exact, signatures intact).
  if (m.raw && (m.format === format || format === "both")) return m.raw.toString("utf8");
  if (format === "legacy") return legacyEnvelopeText(m.message, m.message.seq ?? 0);
  return encodeHeraldFrames(m.message)[1].toString("utf8");
}
