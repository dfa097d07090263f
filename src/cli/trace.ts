import type { MessageTrace, SinkTrace } from "../broker/commands.js";
import { EXIT, noMore, out, parse, UsageError } from "./args.js";
import { askBroker } from "./ask.js";

const USAGE = `usage: herald trace ID [--json] [--endpoint E]

Where did the message with this id go? Whether this broker stored it (seq, when, topic, origin) and, for
each sink, whether it took it (done), is sending it, has still to reach it (waiting, with how many
before it), holds it for a bridged legacy port not bound yet (held), passed over a message it can never
carry (passed-over), or was added after it (not-for-sink).
Exit 0 when the broker stored it, 1 when it does not have it (never accepted, or pruned), 4 when no
broker answers.`;

export async function trace(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    { json: { type: "boolean" }, endpoint: { type: "string", short: "e" } },
    USAGE,
  );
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  const [id, ...rest] = positionals;
  if (id === undefined) throw new UsageError(`trace needs a message id\n\n${USAGE}`);
  noMore(rest, USAGE);
  const t = await askBroker(values, (client) => client.trace(id));
  out(values.json ? JSON.stringify(t, null, 2) : render(t));
  return t.found ? EXIT.ok : EXIT.failed;
}

export function render(t: MessageTrace): string {
  if (!t.found) {
    const kept =
      t.keptForMs === undefined ? "" : ` (delivered messages are kept ${Math.round(t.keptForMs / 1000)} s)`;
    const oldest =
      t.oldestSeq === undefined
        ? "the outbox holds no messages"
        : `the oldest it still holds is seq ${t.oldestSeq}, stored ${t.oldestAcceptedAt}`;
    return `${t.id}: not stored by broker ${t.broker}: never accepted here, or pruned since${kept}; ${oldest}`;
  }
  const via = t.via && t.via.length > 0 ? `, via ${t.via.join(" > ")}` : "";
  const lines = [
    `${t.id}: stored by broker ${t.broker} as seq ${t.seq} at ${t.acceptedAt}`,
    `  topic ${t.topic}, sent ${t.sentAt} by ${t.origin?.app} on ${t.origin?.host}${via}`,
  ];
  if (t.sinks.length === 0) lines.push("  no sinks: nothing reads this broker's outbox");
  for (const s of t.sinks) lines.push(`  ${s.name} (${s.kind}): ${sinkLine(s)}`);
  return lines.join("\n");
}

/** What each state means for this kind of sink, in words. */
function sinkLine(s: SinkTrace): string {
  const err = s.lastError ? `; last error: ${s.lastError}` : "";
  switch (s.state) {
    case "done": {
      // The caveat (RabbitMQ returned some of this sink's messages unroutable, or the sink predates the
      // records trace relies on) must reach the reader: "confirmed" alone reads as delivered.
      const done = DONE[s.kind] ?? "taken by the sink";
      return s.detail ? `${done}; but ${s.detail}` : done;
    }
    case "sending":
      return `handed to the sink, not confirmed yet (sink ${s.sinkState})${err}`;
    case "waiting":
      return `not reached yet: ${s.ahead} message(s) before it (sink ${s.sinkState})${err}`;
    case "held":
    case "passed-over":
    case "not-for-sink":
      return `${s.state}: ${s.detail ?? ""}`;
  }
}

const DONE: Record<string, string> = {
  zeromq: "published on its socket (to the subscribers connected then)",
  amqp: "confirmed by RabbitMQ",
  forward: "stored by the next broker (trace it there too)",
  shim: "taken by the shim (sent on the old port of the service that owns the topic, if any)",
  memory: "delivered",
};
