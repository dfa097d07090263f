/**
 * Media types as AMQP publishers write them in `content_type`: `type/subtype` with optional parameters
 * (RFC 9110 section 8.3.1: `application/json; charset=utf-8`). fedora-messaging and other publishers add a
 * charset; herald matches on the media type alone and checks the charset. Pure functions.
 */
import { ProtocolError } from "../errors.js";

/** herald's AMQP format (fedora-messaging.ts): the envelope. */
export const HERALD_CONTENT_TYPE = "application/vnd.herald.envelope+json";
/** fedora-messaging's AMQP format: a JSON body. */
export const FM_CONTENT_TYPE = "application/json";

export interface MediaType {
  /** `type/subtype`, lowercased (media types are case-insensitive). */
  type: string;
  /** The `charset` parameter, lowercased and unquoted, when there is one. */
  charset?: string;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Charsets in which herald's UTF-8 JSON reading gives the bytes' meaning. */
const UTF8_READABLE: ReadonlySet<string> = new Set(["utf-8", "utf8", "us-ascii", "ascii"]);

/** The media type and charset of a content type, or undefined when it is not `type/subtype[; params]`. */
export function parseMediaType(contentType: string): MediaType | undefined {
  const [essence = "", ...params] = contentType.split(";");
  const type = essence.trim().toLowerCase();
  const [main, sub, ...rest] = type.split("/");
  if (rest.length > 0 || !main || !sub || !TOKEN.test(main) || !TOKEN.test(sub)) return undefined;
  const media: MediaType = { type };
  for (const param of params) {
    const eq = param.indexOf("=");
    if (param.trim() === "") continue; // "application/json;" is common enough
    if (eq < 0) return undefined;
    const name = param.slice(0, eq).trim().toLowerCase();
    let value = param.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"'))
      value = value.slice(1, -1).replace(/\\(.)/g, "$1");
    if (!TOKEN.test(name)) return undefined;
    if (name === "charset") media.charset = value.toLowerCase();
  }
  return media;
}

/** Whether text in this charset (none: UTF-8, as JSON is) reads correctly as UTF-8. */
export function isUtf8Charset(charset: string | undefined): boolean {
  return charset === undefined || UTF8_READABLE.has(charset);
}

/**
 * The format a source in format `auto` reads a content type as: herald's envelope type, else
 * fedora-messaging for `application/json` or none. Parameters are allowed (fedora-messaging and others
 * send `application/json; charset=utf-8`), but a charset other than UTF-8 (or its subset US-ASCII) is
 * refused: herald would read its bytes as UTF-8 and store other text than was sent.
 */
export function formatOfContentType(ct: unknown): "herald" | "fedora-messaging" {
  if (ct === undefined) return "fedora-messaging";
  const media = typeof ct === "string" ? parseMediaType(ct) : undefined;
  if (media?.type !== HERALD_CONTENT_TYPE && media?.type !== FM_CONTENT_TYPE)
    throw new ProtocolError(
      `AMQP content type ${JSON.stringify(ct)} is neither ${HERALD_CONTENT_TYPE} nor ${FM_CONTENT_TYPE}: publish herald or fedora-messaging messages, or set the source's format explicitly`,
    );
  if (!isUtf8Charset(media.charset))
    throw new ProtocolError(
      `AMQP content type ${JSON.stringify(ct)} declares charset ${media.charset}: herald reads JSON as UTF-8; publish it in UTF-8 (charset=utf-8, or no charset)`,
    );
  return media.type === HERALD_CONTENT_TYPE ? "herald" : "fedora-messaging";
}
