import { createClient } from "../client/create.js";
import type { Ack, HeraldClient } from "../client/publisher.js";
import { unsignedReason } from "../client/security.js";
import type { HeraldConfig } from "../config/schema.js";
import { HeraldError } from "../errors.js";
import { isJsonObject, type JsonObject } from "../wire/json.js";
import { EXIT, out, parse, UsageError } from "./args.js";
import { context } from "./context.js";

const USAGE = `usage: herald publish TOPIC [JSON | -] [--endpoint E] [--json] [--header K=V ...] [--schema NAME]
                      [--config FILE]

Publish one message (JSON body given as an argument) or many (\`-\`, or no JSON with stdin not a
terminal: one JSON body per line). Prints one line per acknowledged message; exits 1 if any was refused.`;

export async function publish(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      endpoint: { type: "string", short: "e" },
      json: { type: "boolean" },
      header: { type: "string", multiple: true },
      schema: { type: "string" },
    },
    USAGE,
  );
  if (values.help) {
    out(USAGE);
    return EXIT.ok;
  }
  const [topic, body, ...surplus] = positionals;
  if (!topic) throw new UsageError(`TOPIC is required\n\n${USAGE}`);
  // Silently publishing only the first of several bodies would lose the rest.
  if (surplus.length > 0)
    throw new UsageError(
      `one JSON body per command, got ${surplus.length + 1}: publish several with \`-\` and one body per ` +
        `line on stdin\n\n${USAGE}`,
    );
  const ctx = context(values.config);
  const client = createClient({
    config: ctx.config,
    ...(values.endpoint ? { endpoint: values.endpoint } : {}),
  });
  const headers = parseHeaders(values.header ?? []);
  const extra = { headers, ...(values.schema ? { schema: values.schema } : {}) };
  try {
    if (body !== undefined && body !== "-") {
      const r = await one(client, topic, parseBody(body, "argument"), extra);
      return report([r], values.json ?? false, [], ctx.config);
    }
    if (body === undefined && process.stdin.isTTY)
      throw new UsageError(`give a JSON body or pipe lines to stdin\n\n${USAGE}`);
    return await fromStdin(client, topic, extra, values.json ?? false, ctx.config);
  } finally {
    await client.close();
  }
}

type Extra = { headers: Record<string, string>; schema?: string };

async function one(
  client: HeraldClient,
  topic: string,
  body: JsonObject,
  extra: Extra,
): Promise<Ack | HeraldError> {
  try {
    return await client.publish(topic, body, extra);
  } catch (err) {
    if (err instanceof HeraldError && err.code !== "NO_BROKER" && err.code !== "TIMEOUT") return err;
    throw err;
  }
}

/** Lines published per request round: each round's acknowledgements are printed before the next. */
const CHUNK = 1000;

/**
 * One body per line, published and reported a chunk at a time: when the broker stops answering midway,
 * what it acknowledged so far has been printed, and the error says from which line nothing is known.
 */
async function fromStdin(
  client: HeraldClient,
  topic: string,
  extra: Extra,
  json: boolean,
  config: HeraldConfig,
): Promise<number> {
  // Loaded here: node:readline and the streams under it cost a one-message publish ~1 ms to load.
  const { createInterface } = await import("node:readline");
  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  let inputs: Array<{ topic: string; body: JsonObject } & Extra> = [];
  let where: string[] = [];
  let failed = false;
  let acked = 0;
  const flush = async (): Promise<void> => {
    if (inputs.length === 0) return;
    const results = await client.publishMany(inputs).catch((err: unknown) => {
      throw partial(err, acked, where[0] ?? "");
    });
    failed = report(results, json, where, config) !== EXIT.ok || failed;
    acked += results.filter((r) => !(r instanceof HeraldError)).length;
    inputs = [];
    where = [];
  };
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line.trim() === "") continue;
    where.push(`stdin line ${n}`);
    inputs.push({ topic, body: parseBody(line, `stdin line ${n}`), ...extra });
    if (inputs.length >= CHUNK) await flush();
  }
  await flush();
  return failed ? EXIT.failed : EXIT.ok;
}

/** The broker stopped answering: say what was acknowledged before (printed) and what is unknown. */
function partial(err: unknown, acked: number, from: string): unknown {
  if (!(err instanceof HeraldError) || acked === 0) return err;
  return new HeraldError(
    err.code,
    `${err.message}\n${acked} message(s) were acknowledged before this (printed above); from ${from} on, ` +
      "each message may or may not be stored: publish those lines again only after checking (a new run gives new ids)",
    { retryable: err.retryable },
  );
}

/** `where[i]` names result i's input in refusals (stdin line N). */
function report(
  results: Array<Ack | HeraldError>,
  json: boolean,
  where: readonly string[],
  config: HeraldConfig,
): number {
  let failed = 0;
  let why: string | undefined;
  for (const [i, r] of results.entries()) {
    if (r instanceof HeraldError) {
      failed++;
      const at = where[i] === undefined ? "" : `${where[i]}: `;
      if (r.code === "UNSIGNED") why ??= `\n  ${unsignedReason(config)}`;
      process.stderr.write(`refused: ${at}${r.code}: ${r.message}${r.code === "UNSIGNED" ? why : ""}\n`);
    } else if (json) out(JSON.stringify(r));
    else out(`ok ${r.id} seq=${r.seq}${r.duplicate ? " (duplicate)" : ""}`);
  }
  return failed > 0 ? EXIT.failed : EXIT.ok;
}

function parseBody(text: string, where: string): JsonObject {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isJsonObject(v)) throw new UsageError(`${where} must be a JSON object, e.g. '{"build": 42}'`);
  return v;
}

function parseHeaders(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list) {
    const eq = h.indexOf("=");
    if (eq <= 0) throw new UsageError(`--header takes KEY=VALUE, got '${h}'`);
    out[h.slice(0, eq)] = h.slice(eq + 1);
  }
  return out;
}
