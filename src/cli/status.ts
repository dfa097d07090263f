import type { BrokerStatus } from "../broker/broker.js";
import { EXIT, noMore, out, parse } from "./args.js";
import { askBroker } from "./ask.js";

const USAGE = `usage: herald status [--json] [--endpoint E]

Is the broker up; outbox depth; each sink's cursor, lag, state, last error and the messages it could
not carry (skipped=N). Exit 4 when no broker answers.`;

export async function status(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { json: { type: "boolean" }, endpoint: { type: "string", short: "e" } },
    USAGE,
  );
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  noMore(positionals, USAGE);
  const s = (await askBroker(values, (client) => client.status())) as BrokerStatus;
  out(values.json ? JSON.stringify(s, null, 2) : render(s));
  return EXIT.ok;
}

export function render(s: BrokerStatus): string {
  const o = s.outbox;
  const lines = [
    `broker ${s.broker} (herald ${s.version}, pid ${s.pid}) up since ${s.startedAt}${s.accepting ? "" : "  NOT ACCEPTING"}`,
    `submit: ${s.endpoints.join(", ")}`,
    `outbox: head seq ${o.headSeq}, ${o.totalRows} rows, ${o.pendingMessages} pending (${o.pendingBytes} bytes)` +
      (o.oldestPendingAt ? `, oldest pending ${new Date(o.oldestPendingAt).toISOString()}` : "") +
      (o.failed ? `, FAILED: ${o.failed}` : ""),
    ...refusingLine(s),
    `memory: rss ${mb(s.memory.rss)}, heap ${mb(s.memory.heapUsed)}, outside the heap ${mb(s.memory.external)}`,
    `requests ${s.submit.requests}, messages ${s.submit.messages}, refused ${s.submit.rejected}, bad requests ${s.submit.badRequests}`,
    "",
    pad(["SINK", "KIND", "STATE", "CURSOR", "LAG", "DELIVERED", "RETRIES", "LAST ERROR"]),
  ];
  for (const k of s.sinks) {
    const counters = Object.entries({ skipped: k.skipped ?? 0, ...k.health.counters })
      .filter(([, v]) => v > 0)
      .map(([c, v]) => `${c}=${v}`)
      .join(" ");
    lines.push(
      pad([
        k.name,
        k.kind,
        k.health.state,
        String(k.cursor),
        String(k.lag),
        String(k.delivered),
        String(k.retries),
        `${lastError(k)}${counters ? ` (${counters})` : ""}`,
      ]),
    );
  }
  if (s.sources.length > 0) {
    lines.push("", pad(["SOURCE", "KIND", "STATE", "WAITING", "", "INGESTED", "RETRIES", "LAST ERROR"]));
    for (const src of s.sources) {
      const c = src.counters;
      lines.push(
        pad([
          src.name,
          src.kind,
          src.health.state,
          String(src.waiting),
          "",
          String(c["ingested"] ?? 0),
          String(c["retries"] ?? 0),
          `${src.health.lastError ?? "-"} (duplicates=${c["duplicates"] ?? 0} refused=${c["refused"] ?? 0})`,
        ]),
      );
    }
  }
  return lines.join("\n");
}

/** A full disk or outbox: the one line an operator must not miss (clients get STORAGE_FULL / OUTBOX_FULL). */
function refusingLine(s: BrokerStatus): string[] {
  const r = s.refusing;
  if (r === undefined) return [];
  const when = `${r.refused} messages refused since ${r.since}, the last at ${r.lastAt}`;
  return [
    r.active
      ? `REFUSING MESSAGES (${r.code}): ${when}: ${r.message}`
      : `refused messages (${r.code}), none stored since: ${when}: ${r.message}`,
  ];
}

type Sink = BrokerStatus["sinks"][number];

/**
 * The sink's latest error (the dispatcher's or its transport's) with when it happened. Once the sink is
 * `up` again and has delivered since (or has nothing left to deliver) the error is history: shown as
 * recovered, so that a working sink does not look broken.
 */
export function lastError(k: Sink): string {
  const errors = [
    { text: k.lastError, at: k.lastErrorAt },
    { text: k.health.lastError, at: k.health.lastErrorAt },
  ].filter((e): e is { text: string; at: string | undefined } => e.text !== undefined);
  const latest = errors.sort((a, b) => (b.at ?? "").localeCompare(a.at ?? ""))[0];
  if (latest === undefined) return "-";
  if (latest.at === undefined) return latest.text;
  const deliveredSince = k.lastDeliveredAt !== undefined && k.lastDeliveredAt > latest.at;
  const recovered = k.health.state === "up" && (deliveredSince || k.lag === 0);
  return recovered ? `- (recovered; at ${latest.at}: ${latest.text})` : `${latest.text} (at ${latest.at})`;
}

function mb(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

function pad(cols: string[]): string {
  const widths = [14, 9, 9, 8, 8, 10, 8, 0];
  return cols.map((c, i) => (widths[i] ? c.padEnd(widths[i]!) : c)).join(" ");
}
