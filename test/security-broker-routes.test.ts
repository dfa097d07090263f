import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Subscriber } from "../src/client/subscriber.js";
import type { SecurityError } from "../src/errors.js";
import { generateIdentity, type Identity, TrustStore, trustKey } from "../src/security/index.js";
import { Recorder, readCassette } from "../src/testing/recording.js";
import { AmqpTransport } from "../src/transport/amqp.js";
import type { Delivery } from "../src/transport/types.js";
import type { Message } from "../src/wire/message.js";
import { Admin, AMQP_URL, uniq } from "./amqp-helpers.js";
import { waitFor } from "./helpers/broker.js";
import { Closer, collect, linkUp, type SecureBroker, startSecureBroker } from "./security-broker-helpers.js";

let root: string;
let alice: Identity;
let stranger: Identity;
const closer = new Closer();
const running: SecureBroker[] = [];
let admin: Admin;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "herald-secr-"));
  alice = generateIdentity("alice", join(root, "client-keys"));
  stranger = generateIdentity("stranger", join(root, "client-keys"));
  admin = await Admin.open();
});
afterEach(async () => {
  await closer.closeAll();
  for (const b of running.splice(0)) await b.stop();
});
afterAll(async () => {
  await admin.close();
  rmSync(root, { recursive: true, force: true });
});

async function broker(
  name: string,
  extra: Parameters<typeof startSecureBroker>[2] = {},
): Promise<SecureBroker> {
  const dir = join(root, name);
  trustKey(alice, join(dir, "trust"));
  const b = await startSecureBroker(dir, { security: { requireSignatures: true } }, { name, ...extra });
  running.push(b);
  return b;
}

function aliceTrust(): TrustStore {
  const t = new TrustStore(join(root, "verifier-trust"));
  trustKey(alice, t.dir);
  t.reload();
  return t;
}

describe("a signed message verifies at the final subscriber on every route", () => {
  it("through RabbitMQ: AMQP sink to a named queue, decoded by the AMQP source in herald format", async () => {
    const exchange = await admin.exchange(uniq("sec-x"));
    const queue = await admin.queue(uniq("sec-q"), exchange);
    const sink = new AmqpTransport({ name: "rabbit", url: AMQP_URL, exchange, format: "herald" });
    const b = await broker("amqp", { extraSinks: [sink] });
    const client = closer.client({ endpoint: b.ipc, sign: alice });
    const acks = [
      await client.publish("org.alice.one", { n: 1, nested: { a: [1, 2.5, "x"] } }),
      await client.publish("org.alice.two", { n: 2 }, { headers: { "x-trace": "t1" } }),
    ];
    const source = new AmqpTransport({ name: "rabbit-in", url: AMQP_URL, exchange, queue, format: "herald" });
    const rejected: string[] = [];
    const sub = closer.add(
      new Subscriber({
        sources: [source],
        verify: { trust: aliceTrust() },
        manualAck: true,
        onRejected: (_d, e) => rejected.push(e.code),
      }),
    );
    const { got } = collect(sub);
    expect(await waitFor(() => acks.every((a) => got.some((g) => g.id === a.id)), 30_000)).toBe(true);
    for (const a of acks) expect(got.find((g) => g.id === a.id)?.signer).toBe("alice");
    expect(rejected).toEqual([]);
    await source.close();
  });

  it("recorded, then replayed into another broker: verifies after both hops", async () => {
    const first = await broker("rec1");
    const trust = aliceTrust();
    const recSub = closer.subscriber(first.pub.herald, { verify: { trust } });
    const cassette = join(root, "cassette.jsonl");
    const recorder = new Recorder(cassette);
    const got: Array<{ id: string }> = [];
    void (async () => {
      try {
        for await (const m of recSub) {
          got.push({ id: m.message.id });
          if (m.message.topic !== "org.alice.probe") recorder.write(m);
        }
      } catch {
        // closed
      }
    })();
    const client = closer.client({ endpoint: first.ipc, sign: alice });
    await linkUp(async () => (await client.publish("org.alice.probe", {})).id, got);
    const sent = [
      (await client.publish("org.alice.rec", { i: 1, f: 0.1 })).id,
      (await client.publish("org.alice.rec", { i: 2, s: "é\u2028" })).id,
    ];
    expect(await waitFor(() => sent.every((id) => got.some((g) => g.id === id)))).toBe(true);
    await recorder.close();

    const messages: Message[] = [];
    for await (const { message } of readCassette(cassette)) messages.push(message);
    expect(messages.map((m) => m.id)).toEqual(sent);

    const second = await broker("rec2");
    const finalSub = closer.subscriber(second.pub.herald, { verify: { trust } });
    const final = collect(finalSub).got;
    const replayer = closer.client({ endpoint: second.ipc });
    const prober = closer.client({ endpoint: second.ipc, sign: alice });
    await linkUp(async () => (await prober.publish("org.alice.probe", {})).id, final);
    const results = await replayer.submit(messages);
    expect(results.every((r) => !(r instanceof Error))).toBe(true);
    expect(await waitFor(() => sent.every((id) => final.some((g) => g.id === id)))).toBe(true);
    for (const id of sent) expect(final.find((g) => g.id === id)?.signer).toBe("alice");
    expect(finalSub.stats().rejected).toEqual({});
  });

  it("a subscriber drops what fails verification, counts it by code and reports it", async () => {
    // A broker that does not check signatures, so forged traffic reaches the PUB socket.
    const dir = join(root, "open");
    const b = await startSecureBroker(dir, {}, { name: "open" });
    running.push(b);
    const rejected: Array<{ d: Delivery; e: SecurityError }> = [];
    const sub = closer.subscriber(b.pub.herald, {
      verify: { trust: aliceTrust() },
      onRejected: (d, e) => rejected.push({ d, e }),
    });
    const { got } = collect(sub);
    const good = closer.client({ endpoint: b.ipc, sign: alice });
    await linkUp(async () => (await good.publish("org.alice.probe", {})).id, got);
    const unsigned = await closer.client({ endpoint: b.ipc }).publish("org.x.unsigned", {});
    const unknown = await closer.client({ endpoint: b.ipc, sign: stranger }).publish("org.x.unknown", {});
    const fence = await good.publish("org.alice.fence", {});
    expect(await waitFor(() => got.some((g) => g.id === fence.id))).toBe(true);
    expect(got.map((g) => g.id)).not.toContain(unsigned.id);
    expect(got.map((g) => g.id)).not.toContain(unknown.id);
    expect(sub.stats().rejected).toEqual({ UNSIGNED: 1, UNKNOWN_KEY: 1 });
    expect(rejected.map((r) => [r.d.message.id, r.e.code])).toEqual([
      [unsigned.id, "UNSIGNED"],
      [unknown.id, "UNKNOWN_KEY"],
    ]);
  });
});
