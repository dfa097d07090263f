/**
 * Content types with parameters (fuzz review): `application/json; charset=utf-8`, as fedora-messaging and
 * other publishers send it, was rejected as undecodable by a source in format `auto`. The media type
 * decides now; a charset herald cannot read as UTF-8 is refused, saying so.
 */
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../src/errors.js";
import { isUtf8Charset, parseMediaType } from "../src/wire/content-type.js";
import {
  type AmqpIncoming,
  decodeAmqp,
  encodeAmqp,
  HERALD_CONTENT_TYPE,
} from "../src/wire/fedora-messaging.js";
import { createMessage } from "../src/wire/message.js";

const fm = (contentType: string | undefined, content = '{"a": 1}'): AmqpIncoming => ({
  routingKey: "org.example.x",
  content: Buffer.from(content),
  properties: { contentType, messageId: "m-1", headers: { "sent-at": "2019-07-30T19:12:22+00:00" } },
});

describe("AMQP content type (format auto)", () => {
  it("takes application/json with a UTF-8 or US-ASCII charset, in any case and spacing, quoted or not", () => {
    for (const ct of [
      "application/json; charset=utf-8",
      "application/json;charset=UTF-8",
      'application/json; charset="utf-8"',
      "Application/JSON ; Charset = utf8",
      "application/json; charset=us-ascii",
      "application/json; charset=utf-8; version=2",
      "application/json;",
    ]) {
      const d = decodeAmqp(fm(ct));
      expect(d.format, ct).toBe("fedora-messaging");
      expect(d.message.body).toEqual({ a: 1 });
    }
  });

  it("takes herald's envelope type with a charset too", () => {
    const pub = encodeAmqp(createMessage({ topic: "t.x", body: { b: 2 } }), "herald");
    const d = decodeAmqp({
      routingKey: pub.routingKey,
      content: pub.content,
      properties: { ...pub.properties, contentType: `${HERALD_CONTENT_TYPE}; charset=utf-8` },
    });
    expect(d.format).toBe("herald");
    expect(d.message.body).toEqual({ b: 2 });
  });

  it("refuses another charset, naming it and the fix", () => {
    expect(() => decodeAmqp(fm("application/json; charset=iso-8859-1"))).toThrow(ProtocolError);
    expect(() => decodeAmqp(fm("application/json; charset=utf-16"))).toThrow(
      'AMQP content type "application/json; charset=utf-16" declares charset utf-16: herald reads JSON as UTF-8; publish it in UTF-8 (charset=utf-8, or no charset)',
    );
  });

  it("still refuses other media types and malformed ones", () => {
    for (const ct of [
      "text/plain; charset=utf-8",
      "application/jsonx",
      "application/json/x",
      "",
      "application/json; junk",
    ])
      expect(() => decodeAmqp(fm(ct)), ct).toThrow(/is neither/);
    expect(decodeAmqp(fm(undefined)).format).toBe("fedora-messaging");
  });

  it("is ignored when the source's format is set", () => {
    expect(decodeAmqp(fm("application/json; charset=iso-8859-1"), "fedora-messaging").message.body).toEqual({
      a: 1,
    });
  });
});

describe("parseMediaType", () => {
  it("splits type and charset", () => {
    expect(parseMediaType('Application/Json; Charset="UTF-8"')).toEqual({
      type: "application/json",
      charset: "utf-8",
    });
    expect(parseMediaType("application/json")).toEqual({ type: "application/json" });
    expect(parseMediaType("json")).toBeUndefined();
    expect(isUtf8Charset(undefined)).toBe(true);
    expect(isUtf8Charset("latin1")).toBe(false);
  });
});
