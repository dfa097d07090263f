import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LocalSubmitter, SOURCE_PEER, type Submitter } from "../src/broker/local-submit.js";
import { SourceIngest } from "../src/broker/source-ingest.js";
import { type HeraldError, rejected } from "../src/errors.js";
import { generateIdentity, type Identity, signMessage, trustKey } from "../src/security/index.js";
import { type Logger, silentLogger } from "../src/util/log.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";
import { fakeSource } from "./helpers/fake-source.js";
import { type SecureBroker, startSecureBroker } from "./security-broker-helpers.js";

// An AMQP source is written by whoever may publish to its exchange. A message from it that carries `via`
// used to be refused FORWARD_REFUSED (retryable) for the in-process peer, before any signature check, and
// source ingest retried it forever at the head of its queue: 100 of them filled the prefetch and nothing
// else from that source was ever ingested.

let root: string;
let alice: Identity;
const running: SecureBroker[] = [];
const ingests: SourceIngest[] = [];

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "herald-srcvia-"));
  alice = generateIdentity("alice", join(root, "client-keys"));
});
afterEach(async () => {
  for (const i of ingests.splice(0)) await i.stop();
  for (const b of running.splice(0)) await b.stop();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function recordingLog(lines: string[]): Logger {
  const log: Logger = {
    ...silentLogger,
    warn: (m: string) => void lines.push(m),
    child: () => log,
  };
  return log;
}

async function curveBroker(name: string, security: Record<string, unknown> = {}): Promise<SecureBroker> {
  const dir = join(root, name);
  generateIdentity(name, join(dir, "keys"));
  trustKey(alice, join(dir, "trust"));
  const b = await startSecureBroker(
    dir,
    { security: { identity: name, curve: true, requireSignatures: true, ...security } },
    { name },
  );
  running.push(b);
  return b;
}

const unsignedWithVia = (i: number): Message => ({
  ...createMessage({ topic: "org.example.poison", body: { i } }),
  via: ["some-other-broker"],
});
const signed = (topic: string, sentAt?: string): Message =>
  signMessage(createMessage({ topic, body: {}, ...(sentAt ? { sentAt } : {}) }), alice);
const old = (): string => new Date(Date.now() - 10 * 60_000).toISOString();

describe("via on messages from a source (in-process submits)", () => {
  it("is no forwarding claim: judged as a fresh submission, whatever via says, CURVE on", async () => {
    const b = await curveBroker("hub-src");
    const local = new LocalSubmitter(() => b.broker);
    const code = async (m: Message): Promise<string> => {
      const [r] = await local.submit([m]);
      return "code" in (r as object) ? (r as HeraldError).code : "ok";
    };
    const before = b.broker.status().outbox.headSeq;
    // Unsigned: the signature check speaks (final), not a retryable FORWARD_REFUSED.
    expect(await code(unsignedWithVia(0))).toBe("UNSIGNED");
    // Signed and fresh: stored, via and all.
    expect(await code({ ...signed("org.example.ok"), via: ["elsewhere"] })).toBe("ok");
    // Old: via lifts no freshness limit from an in-process submit (its publisher wrote it), so STALE.
    expect(await code({ ...signed("org.example.old", old()), via: ["elsewhere"] })).toBe("STALE");
    expect(b.broker.status().outbox.headSeq).toBe(before + 1);
    // Naming this broker: a loop, dropped and counted, never stored.
    const [loop] = await local.submit([{ ...signed("org.example.loop"), via: ["x", "hub-src"] }]);
    expect(loop).toMatchObject({ seq: 0, duplicate: true });
    expect(b.broker.status().submit.loopsStopped).toBe(1);
    expect(b.broker.status().outbox.headSeq).toBe(before + 1);
    expect(b.broker.status().submit.admissionByCode["FORWARD_REFUSED"]).toBeUndefined();
  });

  it("a source's messages have no age limit (its queue held them while the broker was down); the shim's do", async () => {
    const dir = join(root, "aged-src");
    trustKey(alice, join(dir, "trust"));
    const b = await startSecureBroker(dir, { security: { requireSignatures: true } }, { name: "aged-src" });
    running.push(b);
    const source = new LocalSubmitter(() => b.broker, SOURCE_PEER);
    const [aged] = await source.submit([signed("org.example.queued", old())]);
    expect(aged).toMatchObject({ duplicate: false });
    const [agedVia] = await source.submit([{ ...signed("org.example.queued2", old()), via: ["elsewhere"] }]);
    expect(agedVia).toMatchObject({ duplicate: false });
    // Still checked for everything else: signature and policy.
    const [unsigned] = await source.submit([createMessage({ topic: "org.example.u", body: {} })]);
    expect((unsigned as HeraldError).code).toBe("UNSIGNED");
    // The in-broker shim (LOCAL_PEER) keeps the freshness window.
    const [shim] = await new LocalSubmitter(() => b.broker).submit([signed("org.example.old", old())]);
    expect((shim as HeraldError).code).toBe("STALE");
  });

  it("lifts no freshness limit without CURVE either (the source is no forwarding broker)", async () => {
    const dir = join(root, "plain-src");
    trustKey(alice, join(dir, "trust"));
    const b = await startSecureBroker(dir, { security: { requireSignatures: true } }, { name: "plain-src" });
    running.push(b);
    const [r] = await new LocalSubmitter(() => b.broker).submit([
      { ...signed("org.example.old", old()), via: ["elsewhere"] },
    ]);
    expect((r as HeraldError).code).toBe("STALE");
  });

  it("100 poison messages with via do not stop the source: refused for good, later ones ingested", async () => {
    const b = await curveBroker("hub-ingest");
    const { source, push, acked, nacked } = fakeSource();
    const warnings: string[] = [];
    const ingest = new SourceIngest(
      source,
      ["#"],
      new LocalSubmitter(() => b.broker),
      recordingLog(warnings),
    );
    ingests.push(ingest);
    await ingest.start();
    for (let i = 0; i < 100; i++) push(unsignedWithVia(i));
    const good = [signed("org.example.a"), signed("org.example.b"), signed("org.example.c")];
    for (const m of good) push(m);
    expect(await waitFor(() => good.every((m) => acked.includes(m.id)))).toBe(true);
    expect(nacked).toHaveLength(100);
    expect(ingest.status().counters).toMatchObject({ ingested: 3, refused: 100, retries: 0 });
    expect(ingest.status().waiting).toBe(0);
    // One warning for the lot (the broker's own admission log is its business).
    expect(warnings.filter((w) => w.includes("from source refused"))).toHaveLength(1);
  });
});

describe("SourceIngest settles a refusal of the message itself for good", () => {
  it("even when its code is retryable (FORWARD_REFUSED): nacked once, warned at a bounded rate", async () => {
    const { source, push, acked, nacked } = fakeSource();
    let submitted = 0;
    const broker: Submitter = {
      submit: async (ms) => {
        submitted += ms.length;
        return ms.map((m) =>
          m.via?.length
            ? (rejected("FORWARD_REFUSED", `message ${m.id} carries via`) as HeraldError)
            : { id: m.id, seq: 1, acceptedAt: new Date().toISOString(), duplicate: false },
        );
      },
    };
    const warnings: string[] = [];
    const ingest = new SourceIngest(source, ["#"], broker, recordingLog(warnings), 500, 60_000);
    ingests.push(ingest);
    await ingest.start();
    for (let i = 0; i < 100; i++) push(unsignedWithVia(i));
    const good = createMessage({ topic: "org.example.good", body: {} });
    push(good);
    expect(await waitFor(() => acked.includes(good.id))).toBe(true);
    expect(nacked).toHaveLength(100);
    expect(submitted).toBe(101); // each once: nothing went round again
    expect(ingest.status().counters).toMatchObject({ ingested: 1, refused: 100 });
    expect(warnings).toHaveLength(1);
  });

  it("keeps retrying, in order, what the broker cannot take now (OUTBOX_FULL)", async () => {
    const { source, push, acked, nacked } = fakeSource();
    let full = 2;
    const broker: Submitter = {
      submit: async (ms) =>
        ms.map((m) =>
          full-- > 0
            ? (rejected("OUTBOX_FULL", "full") as HeraldError)
            : { id: m.id, seq: 1, acceptedAt: new Date().toISOString(), duplicate: false },
        ),
    };
    const ingest = new SourceIngest(source, ["#"], broker, silentLogger);
    ingests.push(ingest);
    await ingest.start();
    const m = createMessage({ topic: "org.example.busy", body: {} });
    push(m);
    expect(await waitFor(() => acked.includes(m.id))).toBe(true);
    expect(nacked).toHaveLength(0);
  });
});
