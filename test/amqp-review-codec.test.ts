import { describe, expect, it } from "vitest";
import {
  type AmqpIncoming,
  decodeAmqp,
  encodeFedoraMessaging,
  NATIVE_ID_HEADER,
  severityOf,
} from "../src/wire/fedora-messaging.js";
import { createMessage, type Headers, validateMessage } from "../src/wire/message.js";

const severity = (headers: Headers) =>
  encodeFedoraMessaging(createMessage({ topic: "a.b", body: {}, headers })).properties.headers[
    "fedora_messaging_severity"
  ];

describe("fedora_messaging_severity (review)", () => {
  it("publishes only fedora-messaging's levels 10/20/30/40; anything else is INFO (20)", () => {
    // fedora-messaging's headers_schema: enum [10, 20, 30, 40]; its consumers reject anything else.
    const cases: [Headers, number][] = [
      [{ severity: 25 }, 20],
      [{ severity: "5" }, 20],
      [{ severity: 999 }, 20],
      [{ severity: 21.5 }, 20],
      [{ severity: -10 }, 20],
      [{ severity: "constructor" }, 20],
      [{ fedora_messaging_severity: 21.5 }, 20],
      [{ fedora_messaging_severity: 25, severity: "error" }, 40],
      [{ fedora_messaging_severity: 10, severity: 40 }, 10],
      [{ fedora_messaging_severity: "30" }, 30],
      [{ severity: 40 }, 40],
      [{ severity: " 10 " }, 10],
      [{ severity: "Warning" }, 30],
    ];
    for (const [headers, want] of cases) {
      expect(severity(headers), JSON.stringify(headers)).toBe(want);
      expect(severityOf(headers)).toBe(want);
    }
  });
});

const native = (messageId: unknown, body = '{"x":1}'): AmqpIncoming => ({
  routingKey: "org.fedoraproject.prod.bodhi.update.comment",
  content: Buffer.from(body),
  properties: {
    contentType: "application/json",
    messageId,
    headers: {
      fedora_messaging_schema: "base.message",
      fedora_messaging_severity: 20,
      "sent-at": "2024-05-01T10:00:00+00:00",
    },
  },
});

describe("native fedora-messaging message ids (review)", () => {
  for (const id of ["a/b+c==", "msg 1", "<1@host>", "x".repeat(200), "-leading-dash", "ünïcode"]) {
    it(`maps message_id ${JSON.stringify(id.slice(0, 24))} to a valid, stable id and keeps the original`, () => {
      const { message } = decodeAmqp(native(id), "auto");
      expect(() => validateMessage(message)).not.toThrow();
      expect(message.id).toMatch(/^fm-[0-9a-f]{40}$/);
      expect(message.headers[NATIVE_ID_HEADER]).toBe(id);
      // A redelivery (even with another body) keeps the id, so consumers still deduplicate.
      expect(decodeAmqp(native(id, '{"x":2}'), "auto").message.id).toBe(message.id);
    });
  }

  it("keeps valid ids as they are, and different invalid ids apart", () => {
    const ok = decodeAmqp(native("5f0c1c55-4c49-4e5e-9d36-0a9f3f9b9c11"), "auto").message;
    expect(ok.id).toBe("5f0c1c55-4c49-4e5e-9d36-0a9f3f9b9c11");
    expect(ok.headers[NATIVE_ID_HEADER]).toBeUndefined();
    expect(decodeAmqp(native("a b"), "auto").message.id).not.toBe(
      decodeAmqp(native("a c"), "auto").message.id,
    );
  });
});
