import { type HeraldError, rejected } from "../errors.js";
import { MAX_AMQP_HEADER_BYTES } from "../wire/amqp-headers.js";
import type { Message } from "../wire/message.js";
import type { SubmitReply } from "../wire/submit.js";

/** What a request adds around one message's JSON: `{"messages":[` and `]}`. */
const REQUEST_OVERHEAD = '{"messages":[]}'.length;

/**
 * The broker's submit socket takes frames of at most 4 × limits.maxBodyBytes + 1 MiB (its ZeroMQ
 * maxMessageSize, broker.ts): a larger one makes ZeroMQ drop the connection without a reply.
 */
export function requestLimit(maxBodyBytes: number): number {
  return maxBodyBytes * 4 + (1 << 20);
}

/**
 * Per message, the TOO_LARGE error of one too big for any request (`parts` are the messages encoded
 * with encodeSubmitted), or undefined when all fit. Sent, such a message would get no reply at all and
 * every retry would be dropped the same way: a TIMEOUT that blames the broker. The usual case costs one
 * length comparison per message (a UTF-16 unit is at most 3 bytes of UTF-8); only a long one is measured.
 */
export function oversized(
  messages: readonly Message[],
  parts: readonly string[],
  limit: number,
): Array<HeraldError | undefined> | undefined {
  const surelyFits = Math.floor((limit - REQUEST_OVERHEAD) / 3);
  let out: Array<HeraldError | undefined> | undefined;
  for (let i = 0; i < parts.length; i++) {
    if (parts[i]!.length <= surelyFits) continue;
    const size = Buffer.byteLength(parts[i]!, "utf8") + REQUEST_OVERHEAD;
    if (size <= limit) continue;
    out ??= new Array<HeraldError | undefined>(parts.length);
    out[i] = tooLarge(messages[i]!, size, limit);
  }
  return out;
}

function tooLarge(m: Message, size: number, limit: number): HeraldError {
  const { field, bytes } = largestField(m);
  return rejected(
    "TOO_LARGE",
    `message ${m.id} is ${size} bytes as a submit request, over the broker's limit of ${limit} ` +
      `(4 × limits.maxBodyBytes + 1 MiB; ZeroMQ would drop the connection): its ${field} is ${bytes} bytes. ` +
      `Shorten ${field}: large data belongs in the body (at most limits.maxBodyBytes), and headers and ` +
      `origin together must fit ${MAX_AMQP_HEADER_BYTES} bytes as AMQP headers`,
    { id: m.id, field, size, limit },
  );
}

/** The field that makes a message big, for the error (one of its headers when the headers are). */
function largestField(m: Message): { field: string; bytes: number } {
  const fields: Array<[string, unknown]> = [
    ["body", m.body],
    ["headers", m.headers],
    ["via", m.via],
    ["topic", m.topic],
    ["schema", m.schema],
    ["sentAt", m.sentAt],
    ...Object.entries(m.origin).map(([k, v]): [string, unknown] => [`origin.${k}`, v]),
  ];
  let best = largest(fields);
  if (best.field === "headers") {
    const header = largest(
      Object.entries(m.headers).map(([k, v]): [string, unknown] => [`header '${k}'`, v]),
    );
    if (header.bytes * 2 > best.bytes) best = header; // one header is the bulk of them: name it
  }
  return best;
}

function largest(fields: ReadonlyArray<[string, unknown]>): { field: string; bytes: number } {
  let best = { field: "message", bytes: 0 };
  for (const [field, v] of fields) {
    const bytes = v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v) ?? "", "utf8");
    if (bytes > best.bytes) best = { field, bytes };
  }
  return best;
}

/**
 * The broker's maxBatch when it refused a request for holding more messages than that (its
 * broker.submit.maxBatch is lower than this client's maxBatch), else undefined: the reply's `max_batch`.
 */
export function refusedBatchLimit(reply: SubmitReply, count: number): number | undefined {
  if (!("error" in reply) || reply.error.code !== "BAD_REQUEST") return undefined;
  const limit = reply.error.max_batch;
  return Number.isInteger(limit) && limit !== undefined && limit >= 1 && limit < count ? limit : undefined;
}
