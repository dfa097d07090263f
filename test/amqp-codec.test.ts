import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../src/errors.js";
import { backoffDelay } from "../src/transport/amqp-options.js";
import {
  type AmqpIncoming,
  type AmqpPublish,
  decodeAmqp,
  encodeFedoraMessaging,
  encodeHeraldAmqp,
  fmSentAt,
  HERALD_CONTENT_TYPE,
} from "../src/wire/fedora-messaging.js";
import { encodeEnvelope } from "../src/wire/herald.js";
import { createMessage, type Message } from "../src/wire/message.js";

/** What a consumer gets back: amqplib hands header tables over as plain values. */
function received(p: AmqpPublish): AmqpIncoming {
  const headers = Object.fromEntries(
    Object.entries(p.properties.headers).map(([k, v]) =>
      v !== null && typeof v === "object" ? [k, v.value] : [k, v],
    ),
  );
  return { routingKey: p.routingKey, content: p.content, properties: { ...p.properties, headers } };
}

const sample = (): Message =>
  createMessage({
    topic: "org.fedoraproject.prod.bodhi.update.comment",
    body: { comment: { text: "héllo", karma: 1 }, agent: "alice" },
    headers: {
      severity: "warning",
      users: "alice, bob",
      packages: "kernel",
      "fedmsg.i": 3,
      flag: true,
      nil: null,
    },
    schema: "bodhi.update.comment.v1",
    schemaVersion: 2,
  });

describe("fedora-messaging codec", () => {
  it("produces the properties and headers fedora-messaging publishes", () => {
    const m = sample();
    const p = encodeFedoraMessaging(m, { topicPrefix: "org.example" });
    expect(p.routingKey).toBe(`org.example.${m.topic}`);
    expect(p.properties).toMatchObject({
      contentType: "application/json",
      contentEncoding: "utf-8",
      deliveryMode: 2,
      messageId: m.id,
    });
    const h = p.properties.headers;
    expect(h["fedora_messaging_schema"]).toBe("bodhi.update.comment.v1");
    expect(h["fedora_messaging_severity"]).toBe(30);
    expect(h["sent-at"]).toBe(fmSentAt(m.sentAt));
    expect(h["sent-at"]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$/);
    expect(h["fedora_messaging_user_alice"]).toBe(true);
    expect(h["fedora_messaging_user_bob"]).toBe(true);
    expect(h["fedora_messaging_rpm_kernel"]).toBe(true);
    expect(JSON.parse(p.content.toString("utf8"))).toEqual(m.body);
  });

  it("defaults severity to INFO (20) and the schema to base.message", () => {
    const m = createMessage({ topic: "a.b", body: {} });
    const h = encodeFedoraMessaging(m).properties.headers;
    expect(h["fedora_messaging_severity"]).toBe(20);
    expect(h["fedora_messaging_schema"]).toBe("base.message");
    expect(encodeFedoraMessaging(m).routingKey).toBe("a.b");
  });

  it("takes severity as a number, a numeric string (herald publish --header severity=30) or a name", () => {
    const sev = (severity: string | number) =>
      encodeFedoraMessaging(createMessage({ topic: "a.b", body: {}, headers: { severity } })).properties
        .headers["fedora_messaging_severity"];
    expect([sev(30), sev("30"), sev(" 40 "), sev("warning"), sev("Error"), sev("bogus")]).toEqual([
      30, 30, 40, 30, 40, 20,
    ]);
  });

  it("round-trips herald -> fedora-messaging -> herald losslessly", () => {
    const m = { ...sample(), seq: 7, stream: "s-1" };
    const back = decodeAmqp(received(encodeFedoraMessaging(m, { topicPrefix: "p" })), "auto");
    expect(back.format).toBe("fedora-messaging");
    expect(back.message).toEqual(m);
  });

  it("round-trips the herald AMQP format byte for byte", () => {
    const m = sample();
    const p = encodeHeraldAmqp(m);
    expect(p.properties.contentType).toBe(HERALD_CONTENT_TYPE);
    expect(p.properties.deliveryMode).toBe(2);
    expect(p.content.equals(encodeEnvelope(m))).toBe(true);
    const back = decodeAmqp(received(p), "auto");
    expect(back.format).toBe("herald");
    expect(back.message).toEqual(m);
  });

  it("normalizes a native fedora-messaging message and re-publishes it faithfully", () => {
    const native: AmqpIncoming = {
      routingKey: "org.fedoraproject.prod.copr.build.end",
      content: Buffer.from(JSON.stringify({ build: 42, owner: "carol" })),
      properties: {
        contentType: "application/json",
        messageId: "5f0c1c55-4c49-4e5e-9d36-0a9f3f9b9c11",
        priority: 3,
        headers: {
          fedora_messaging_schema: "copr.build.end",
          fedora_messaging_severity: 40,
          fedora_messaging_user_carol: true,
          "sent-at": "2019-07-30T19:12:22+00:00",
        },
      },
    };
    const { message, format } = decodeAmqp(native, "auto", { topicPrefix: "org.fedoraproject" });
    expect(format).toBe("fedora-messaging");
    expect(message).toMatchObject({
      id: "5f0c1c55-4c49-4e5e-9d36-0a9f3f9b9c11",
      topic: "prod.copr.build.end",
      sentAt: "2019-07-30T19:12:22.000Z",
      schema: "copr.build.end",
      body: { build: 42, owner: "carol" },
    });
    expect(message.headers).toMatchObject({ severity: 40, fedora_messaging_user_carol: true, priority: 3 });
    const again = encodeFedoraMessaging(message, { topicPrefix: "org.fedoraproject" });
    expect(again.routingKey).toBe(native.routingKey);
    expect(again.properties.priority).toBe(3);
    for (const [k, v] of Object.entries(native.properties.headers ?? {}))
      expect(again.properties.headers[k], k).toEqual(v);
  });

  it("keeps a sent-at with microseconds as it was", () => {
    const native: AmqpIncoming = {
      routingKey: "a.b",
      content: Buffer.from("{}"),
      properties: {
        contentType: "application/json",
        headers: { "sent-at": "2019-07-30T19:12:22.123456+00:00" },
      },
    };
    const { message } = decodeAmqp(native);
    expect(message.sentAt).toBe("2019-07-30T19:12:22.123Z");
    expect(message.id).toMatch(/^fm-[0-9a-f]{40}$/);
    expect(decodeAmqp(native).message.id).toBe(message.id);
    expect(encodeFedoraMessaging(message).properties.headers["sent-at"]).toBe(
      "2019-07-30T19:12:22.123456+00:00",
    );
  });

  it("takes the timestamp property when sent-at is past year 9999, and refuses when neither is usable", () => {
    const native = (sentAt: string, timestamp?: number): AmqpIncoming => ({
      routingKey: "a.b",
      content: Buffer.from("{}"),
      properties: {
        contentType: "application/json",
        ...(timestamp === undefined ? {} : { timestamp }),
        headers: { "sent-at": sentAt },
      },
    });
    // Date.parse takes a six-digit year; toISOString used to write it as "+275760-...", refused later as INVALID.
    expect(decodeAmqp(native("+275760-09-13T00:00:00Z", 1_564_514_000)).message.sentAt).toBe(
      "2019-07-30T19:13:20.000Z",
    );
    expect(() => decodeAmqp(native("+275760-09-13T00:00:00Z"))).toThrow(/no usable 'sent-at'/);
    expect(() => decodeAmqp(native("not a time", 1e12))).toThrow(ProtocolError);
  });

  it("rejects undecodable bodies and unknown content types with a ProtocolError", () => {
    const bad = (content: string, contentType?: string): AmqpIncoming => ({
      routingKey: "a.b",
      content: Buffer.from(content),
      properties: { contentType, headers: { "sent-at": "2019-07-30T19:12:22+00:00" } },
    });
    expect(() => decodeAmqp(bad("{not json", "application/json"))).toThrow(/not valid JSON/);
    expect(() => decodeAmqp(bad("[1,2]", "application/json"))).toThrow(/JSON object/);
    expect(() => decodeAmqp(bad("{}", "text/plain"))).toThrow(/content type/);
    expect(() => decodeAmqp(bad("{}", HERALD_CONTENT_TYPE))).toThrow(/herald envelope/);
  });

  it("rejects routing keys longer than 255 bytes", () => {
    const m = createMessage({ topic: `a.${"b".repeat(250)}`, body: {} });
    expect(() => encodeFedoraMessaging(m, { topicPrefix: "org.fedoraproject" })).toThrow(/255/);
  });

  it("keeps a header named __proto__ as a header, never as the headers' prototype", () => {
    const headers = JSON.parse('{"__proto__": "x", "constructor": 1}') as Record<string, string | number>;
    const m = createMessage({ topic: "a.b.c", body: { x: 1 }, headers });
    const back = decodeAmqp(received(encodeFedoraMessaging(m))).message;
    expect(Object.hasOwn(back.headers, "__proto__")).toBe(true);
    expect(back).toEqual(m);
    // from a native fedora-messaging publisher, with a null value (which would null the prototype)
    const native: AmqpIncoming = {
      routingKey: "a.b",
      content: Buffer.from("{}"),
      properties: {
        contentType: "application/json",
        headers: JSON.parse('{"__proto__": null, "sent-at": "2019-07-30T19:12:22+00:00"}'),
      },
    };
    const { message } = decodeAmqp(native);
    expect(Object.getPrototypeOf(message.headers)).toBe(Object.prototype);
    expect(Object.hasOwn(message.headers, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(message.headers, "__proto__")?.value).toBeNull();
  });

  it("round-trips arbitrary scalar headers (property)", () => {
    const header = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
      fc.boolean(),
      fc.constant(null),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 20 }), header), (headers) => {
        const m = createMessage({ topic: "a.b.c", body: { x: 1 }, headers });
        expect(decodeAmqp(received(encodeFedoraMessaging(m))).message).toEqual(m);
      }),
      { numRuns: 300 },
    );
  });
});

describe("backoff", () => {
  it("starts at the initial delay, doubles, and stays within the cap plus 20% jitter", () => {
    for (let i = 0; i < 200; i++) {
      const d1 = backoffDelay(1, 100, 10_000);
      expect(d1).toBeGreaterThanOrEqual(100);
      expect(d1).toBeLessThanOrEqual(120);
      const d3 = backoffDelay(3, 100, 10_000);
      expect(d3).toBeGreaterThanOrEqual(400);
      expect(d3).toBeLessThanOrEqual(480);
      const d20 = backoffDelay(20, 100, 10_000);
      expect(d20).toBeGreaterThanOrEqual(10_000);
      expect(d20).toBeLessThanOrEqual(12_000);
    }
  });
});
