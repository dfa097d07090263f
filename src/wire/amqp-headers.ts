import { type HeraldError, rejected } from "../errors.js";
import { type AmqpHeaderValue, FILTER_KINDS, fedoraMessagingHeaders } from "./fedora-messaging.js";
import type { Message } from "./message.js";

/**
 * amqplib encodes a message's header table into a 64 KiB scratch buffer and each name as a short string
 * (255 bytes); a message over either can be stored but never published to AMQP. Checked at submit, so the
 * client hears it, with a little room left below amqplib's buffer.
 */
export const MAX_AMQP_HEADER_BYTES = 60 * 1024;
const MAX_AMQP_NAME_BYTES = 255;

/** Encoded size of one field value in an AMQP table (type byte included), as amqplib writes it. */
function valueBytes(v: AmqpHeaderValue): number {
  if (typeof v === "string") return 5 + Buffer.byteLength(v, "utf8");
  if (typeof v === "boolean") return 2;
  if (v === null) return 1;
  return 9; // numbers: int64 or double
}

/**
 * A cheap sufficient test, so that the exact count (building the headers: ~4 us) runs only for unusual
 * messages. Within these bounds the headers stay under ~30 KiB whatever the characters (3 bytes each at
 * most), with every header written twice and every users/groups/... name once more.
 */
function surelyFits(msg: Message): boolean {
  const o = msg.origin;
  let chars =
    msg.topic.length +
    msg.schema.length +
    msg.sentAt.length +
    o.host.length +
    o.app.length +
    (o.user?.length ?? 0);
  chars += msg.stream?.length ?? 0;
  let entries = 0;
  for (const [k, v] of Object.entries(msg.headers)) {
    if (k.length > 80) return false; // 80 characters are at most 240 bytes: under 255 with herald_h_
    if (typeof v === "string") {
      if (v.length > 70 && Object.hasOwn(FILTER_KINDS, k)) return false; // each name under 255 as a header
      chars += v.length;
    }
    chars += k.length;
    entries++;
  }
  return entries <= 64 && chars <= 4096;
}

/**
 * Why the message's headers cannot be written as AMQP headers (fedora-messaging format, which carries
 * every header plus its own), or undefined.
 */
export function amqpHeaderProblem(msg: Message): HeraldError | undefined {
  // No shortcut by message size: one header name of 247 bytes fits in any small message.
  if (surelyFits(msg)) return undefined;
  let total = 4;
  for (const [name, value] of Object.entries(fedoraMessagingHeaders(msg))) {
    const n = Buffer.byteLength(name, "utf8");
    if (n > MAX_AMQP_NAME_BYTES)
      return rejected(
        "INVALID",
        `header name '${name.slice(0, 48)}...' is ${n} bytes as an AMQP header, AMQP allows ${MAX_AMQP_NAME_BYTES} (herald headers get the prefix herald_h_, users/groups/packages names fedora_messaging_<kind>_): shorten it`,
        { id: msg.id, name: name.slice(0, 300), size: n, limit: MAX_AMQP_NAME_BYTES },
      );
    total += 1 + n + valueBytes(value);
  }
  if (total > MAX_AMQP_HEADER_BYTES)
    return rejected(
      "TOO_LARGE",
      `headers are ${total} bytes as AMQP headers, the limit is ${MAX_AMQP_HEADER_BYTES} (amqplib's header buffer): move the data into the body`,
      { id: msg.id, size: total, limit: MAX_AMQP_HEADER_BYTES },
    );
  return undefined;
}
