import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { decodeReply, type SubmitResult } from "../src/wire/submit.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

// Message fields the broker used to coerce (String(), Number()) and store, or that threw out of the decoder
// and failed the whole request: each is now a per-message INVALID that names the field, over real ZeroMQ.

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

const good = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  topic: "org.example.t",
  body: { a: 1 },
  ...extra,
});

async function submitPayload(payload: string): Promise<SubmitResult[]> {
  const d = new Dealer({ linger: 0, receiveTimeout: 10_000 });
  d.connect(tb!.submit);
  try {
    await d.send(["HERALD1", "r1", payload]);
    const { reply } = decodeReply(await d.receive());
    if (!("results" in reply)) throw new Error(`whole request refused: ${JSON.stringify(reply)}`);
    return reply.results;
  } finally {
    d.close();
  }
}

const submit = (messages: unknown[]) => submitPayload(JSON.stringify({ messages }));

function errorOf(r: SubmitResult | undefined): string {
  if (r === undefined || r.ok) throw new Error(`expected a refusal, got ${JSON.stringify(r)}`);
  expect(r.error.code).toBe("INVALID");
  return r.error.message;
}

/** The sent_at of every stored envelope, by id (stops the broker to read its outbox). */
async function storedSentAt(): Promise<Record<string, string>> {
  await tb!.broker.stop();
  const db = new Database(join(tb!.dir, "outbox.db"), { readonly: true });
  try {
    const rows = db.prepare("SELECT envelope FROM messages").all() as Array<{ envelope: Buffer }>;
    const envs = rows.map((r) => JSON.parse(r.envelope.toString()) as { id: string; sent_at: string });
    return Object.fromEntries(envs.map((e) => [e.id, e.sent_at]));
  } finally {
    db.close();
  }
}

describe("submit: field types are checked per message, never coerced", () => {
  it("refuses each badly typed field by name and stores the valid message next to them", async () => {
    tb = await startTestBroker();
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ schema: { a: 1 } }, /'schema' must be a string.*got an object/],
      [{ schema: null }, /'schema' must be a string.*got null/],
      // String() of this object throws: it used to fail the whole request, the valid message with it.
      [{ schema: { toString: 1 } }, /'schema' must be a string/],
      [{ schema_version: "1" }, /'schema_version' must be an integer/],
      [{ origin: { host: {} } }, /'origin\.host' must be a string, got an object/],
      [{ origin: { host: { toString: 1 } } }, /'origin\.host' must be a string/],
      [{ origin: { app: ["x"] } }, /'origin\.app' must be a string, got a list/],
      [{ origin: { pid: true } }, /'origin\.pid' must be an integer/],
      [{ origin: { pid: "abc" } }, /'origin\.pid' must be an integer.*got a string/],
      [{ origin: { pid: 1.5 } }, /origin\.pid must be a non-negative integer/],
      [{ origin: { user: null } }, /'origin\.user' must be a string \(leave it out when unknown\), got null/],
    ];
    const results = await submit([...bad.map(([extra], i) => good(`bad${i}`, extra)), good("fine")]);
    bad.forEach(([, re], i) => {
      expect(errorOf(results[i])).toMatch(re);
    });
    expect(results[bad.length]).toMatchObject({ ok: true, id: "fine" });
  });

  it("names the nesting limit for a 200,000-level body, and the batch's other message is stored", async () => {
    tb = await startTestBroker();
    const depth = 200_000;
    const body = `{"a":${"[".repeat(depth)}${"]".repeat(depth)}}`;
    const payload = `{"messages":[{"id":"deep","topic":"org.example.t","body":${body}},${JSON.stringify(good("flat"))}]}`;
    const results = await submitPayload(payload);
    expect(errorOf(results[0])).toMatch(/^body nests deeper than 64 levels/);
    expect(results[1]).toMatchObject({ ok: true, id: "flat" });
  });

  it("names the body for a number JSON cannot carry (1e400)", async () => {
    tb = await startTestBroker();
    const results = await submitPayload(
      '{"messages":[{"id":"inf","topic":"org.example.t","body":{"x":1e400}}]}',
    );
    expect(errorOf(results[0])).toMatch(/^body holds the number Infinity/);
  });
});

describe("submit: sent_at is ISO 8601, stored as written", () => {
  it("refuses what Date.parse alone took, names the field and the format, keeps valid forms verbatim", async () => {
    tb = await startTestBroker();
    const refused = ["1", "March 7, 2024", "2024-03-07", "2024-03-07T10:00:00", "2024-02-30T10:00:00Z"];
    const kept = ["2024-03-07T10:00:00Z", "2024-03-07T10:00:00.123456+05:30", "2024-03-07T10:00:00-08:00"];
    const results = await submit([
      ...refused.map((s, i) => good(`r${i}`, { sent_at: s })),
      ...kept.map((s, i) => good(`k${i}`, { sent_at: s })),
    ]);
    refused.forEach((s, i) => {
      expect(errorOf(results[i])).toBe(
        "sentAt (sent_at) must be an ISO 8601 time: YYYY-MM-DDTHH:MM:SS, optional fraction, then Z or ±HH:MM, " +
          `e.g. 2026-11-30T08:18:08.123Z; got ${JSON.stringify(s)}`,
      );
    });
    expect(results.slice(refused.length).every((r) => r.ok)).toBe(true);
    expect(await storedSentAt()).toEqual(Object.fromEntries(kept.map((s, i) => [`k${i}`, s])));
  });
});

describe("submit: via is bounded", () => {
  it("refuses an empty name, a name with a space, and a 4.5 MB list (it used to be acked, then skipped by the PUB sink)", async () => {
    tb = await startTestBroker();
    const huge = Array.from({ length: 4500 }, (_, i) => `${"x".repeat(1000)}${i}`);
    const results = await submit([
      good("empty", { via: [""] }),
      good("space", { via: ["hub one"] }),
      good("huge", { via: huge }),
      good("ok", { via: ["hub01", "hub02.example.org"] }),
    ]);
    expect(errorOf(results[0])).toMatch(
      /^via entry "" is not a broker name \(broker\.name: 1-255 characters/,
    );
    expect(errorOf(results[1])).toMatch(/^via entry "hub one" is not a broker name/);
    expect(errorOf(results[2])).toBe("via lists 4500 brokers, at most 32: a forwarding loop?");
    expect(results[3]).toMatchObject({ ok: true, id: "ok" });
  });
});
