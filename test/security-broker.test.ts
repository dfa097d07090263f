import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { HeraldError } from "../src/errors.js";
import {
  generateIdentity,
  type Identity,
  revokeKey,
  SIG_HEADER,
  SIGNER_HEADER,
  signMessage,
  TrustStore,
  trustKey,
  vouchIngested,
} from "../src/security/index.js";
import type { JsonObject } from "../src/wire/json.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";
import { Closer, collect, linkUp, type SecureBroker, startSecureBroker } from "./security-broker-helpers.js";

let root: string;
let alice: Identity;
let carol: Identity;
let mallory: Identity;
let stranger: Identity;
let shim: Identity;
const closer = new Closer();

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "herald-secb-"));
  const keys = join(root, "client-keys");
  alice = generateIdentity("alice", keys);
  carol = generateIdentity("carol", keys);
  mallory = generateIdentity("mallory", keys);
  stranger = generateIdentity("stranger", keys);
  shim = generateIdentity("shim", keys);
});
afterEach(() => closer.closeAll());
afterAll(() => rmSync(root, { recursive: true, force: true }));

function msg(topic: string, body: JsonObject = { n: 1 }, sentAt?: string): Message {
  return createMessage({ topic, body, ...(sentAt ? { sentAt } : {}) });
}

function flipBase64Bit(b64: string): string {
  const bytes = Buffer.from(b64, "base64");
  bytes[10] = bytes[10]! ^ 0x01;
  return bytes.toString("base64");
}

async function trustedBroker(name: string, security: Record<string, unknown>): Promise<SecureBroker> {
  const dir = join(root, name);
  for (const id of [alice, carol, mallory, shim]) trustKey(id, join(dir, "trust"));
  return startSecureBroker(dir, { security: { reloadInterval: 100, ...security } });
}

describe("broker admission: signature, then policy", () => {
  let b: SecureBroker;
  afterEach(() => b?.stop());

  it("refuses each tampered or unacceptable message with its own code, publishes none, counts each", async () => {
    b = await trustedBroker("tamper", { requireSignatures: true });
    const client = closer.client({ endpoint: b.ipc, retries: 0 });
    const trust = new TrustStore(join(root, "tamper", "trust"));
    trust.reload();
    const sub = closer.subscriber(b.pub.herald, { verify: { trust } });
    const { got } = collect(sub);
    await linkUp(async () => {
      const probe = signMessage(msg("probe.link"), alice);
      await client.submit([probe]);
      return probe.id;
    }, got);

    const good = signMessage(msg("org.test.good", { n: 1 }), alice);
    const cases: Record<string, { m: Message; code: string }> = {};
    const s = (topic = "org.test.x") => signMessage(msg(topic, { n: 2 }), alice);
    let m = s("org.test.topic");
    cases["topic bit"] = { m: { ...m, topic: "org.test.topiC" }, code: "BAD_SIGNATURE" };
    m = signMessage({ ...msg("org.test.h"), headers: { h: "value" } }, alice);
    cases["header bit"] = { m: { ...m, headers: { ...m.headers, h: "valuf" } }, code: "BAD_SIGNATURE" };
    m = s();
    cases["body bit"] = { m: { ...m, body: { n: 3 } }, code: "BAD_SIGNATURE" };
    m = s();
    cases["signature bit"] = {
      m: { ...m, headers: { ...m.headers, [SIG_HEADER]: flipBase64Bit(m.headers[SIG_HEADER] as string) } },
      code: "BAD_SIGNATURE",
    };
    m = s();
    cases["truncated signature"] = {
      m: { ...m, headers: { ...m.headers, [SIG_HEADER]: (m.headers[SIG_HEADER] as string).slice(0, 40) } },
      code: "BAD_SIGNATURE",
    };
    m = signMessage(msg("org.test.other"), mallory);
    cases["signed by another key"] = {
      m: { ...m, headers: { ...m.headers, [SIGNER_HEADER]: alice.keyId } },
      code: "BAD_SIGNATURE",
    };
    cases["unknown key"] = { m: signMessage(msg("org.test.unknown"), stranger), code: "UNKNOWN_KEY" };
    cases["unsigned"] = { m: msg("org.test.unsigned"), code: "UNSIGNED" };
    const old = new Date(Date.now() - 10 * 60_000).toISOString();
    cases["stale"] = { m: signMessage(msg("org.test.stale", {}, old), alice), code: "STALE" };

    const ids = new Set<string>();
    for (const [what, c] of Object.entries(cases)) {
      ids.add(c.m.id);
      const [r] = await client.submit([c.m]);
      expect(r, what).toBeInstanceOf(HeraldError);
      expect((r as HeraldError).code, what).toBe(c.code);
    }
    // A key revoked while the broker runs: refused after the next reload (bounded wait).
    const carolsFirst = signMessage(msg("org.test.carol"), carol);
    expect((await client.submit([carolsFirst]))[0]).not.toBeInstanceOf(HeraldError);
    revokeKey("carol", join(root, "tamper", "trust"));
    const revoked = signMessage(msg("org.test.carol"), carol);
    let code: string | undefined;
    const deadline = Date.now() + 10_000;
    while (code !== "REVOKED_KEY" && Date.now() < deadline) {
      const copy = signMessage({ ...revoked, id: msg("x.y").id }, carol);
      const [r] = await client.submit([copy]);
      code = r instanceof HeraldError ? r.code : undefined;
      if (code) ids.add(copy.id); // accepted before the reload: legitimately published
      if (code !== "REVOKED_KEY") await new Promise((res) => setTimeout(res, 50));
    }
    expect(code).toBe("REVOKED_KEY");

    // A fence: once the good message arrives, anything published before it would have arrived too.
    const [ack] = await client.submit([good]);
    expect(ack).not.toBeInstanceOf(HeraldError);
    expect(await waitFor(() => got.some((g) => g.id === good.id))).toBe(true);
    expect(got.filter((g) => ids.has(g.id))).toEqual([]);
    expect(got.find((g) => g.id === good.id)?.signer).toBe("alice");

    const byCode = b.broker.status().submit.admissionByCode;
    expect(byCode["BAD_SIGNATURE"]).toBe(6);
    expect(byCode["UNKNOWN_KEY"]).toBe(1);
    expect(byCode["UNSIGNED"]).toBe(1);
    expect(byCode["STALE"]).toBe(1);
    expect(byCode["REVOKED_KEY"]).toBeGreaterThanOrEqual(1);
    // Logged with the identity/key id, never a routing id.
    const refused = b.logs.filter((l) => l.includes("message refused"));
    expect(refused.length).toBe(b.broker.status().submit.admissionRejected);
    expect(refused.some((l) => l.includes('"keyId":"stranger:'))).toBe(true);
    expect(b.logs.some((l) => /routing|peer"/i.test(l))).toBe(false);
  });

  it("refuses an identity publishing outside its topics; strict mode denies unnamed topics", async () => {
    b = await trustedBroker("policy", {
      requireSignatures: true,
      strictTopics: true,
      policy: { alice: ["org.alice.#"], carol: ["org.carol.*"], shim: ["org.fedoraproject.#"] },
    });
    const client = closer.client({ endpoint: b.ipc, retries: 0 });
    const code = async (m: Message) => {
      const [r] = await client.submit([m]);
      return r instanceof HeraldError ? r.code : "ok";
    };
    expect(await code(signMessage(msg("org.alice.build.done"), alice))).toBe("ok");
    expect(await code(signMessage(msg("org.carol.thing"), alice))).toBe("UNAUTHORIZED_TOPIC");
    expect(await code(signMessage(msg("org.carol.thing"), carol))).toBe("ok");
    expect(await code(signMessage(msg("misc.unnamed"), alice))).toBe("UNAUTHORIZED_TOPIC");
    // Bad signature is reported as such even on a topic the signer may not use: signature first.
    const forged = signMessage(msg("org.carol.thing"), alice);
    expect(await code({ ...forged, body: { forged: true } })).toBe("BAD_SIGNATURE");
    // Vouched legacy messages pass as the shim's identity: the policy decides what the shim may publish.
    const legacy = { ...msg("org.fedoraproject.prod.bodhi.update"), headers: { "fedmsg.signature": "abc" } };
    expect(await code(vouchIngested(legacy, shim))).toBe("ok");
    expect(await code(vouchIngested(msg("org.alice.x"), shim))).toBe("UNAUTHORIZED_TOPIC");
    expect(b.broker.status().submit.admissionByCode["UNAUTHORIZED_TOPIC"]).toBe(3);
  });

  it("logs refusals up to a rate per code, counting them all: a flood does not fill the log", async () => {
    b = await trustedBroker("flood", {
      requireSignatures: true,
      strictTopics: true,
      policy: { alice: ["org.alice.#"] },
    });
    const client = closer.client({ endpoint: b.ipc, retries: 0 });
    const results = await client.submit(
      Array.from({ length: 50 }, () => signMessage(msg("org.bob.x"), alice)),
    );
    expect(results.every((r) => r instanceof HeraldError && r.code === "UNAUTHORIZED_TOPIC")).toBe(true);
    expect(b.broker.status().submit.admissionByCode["UNAUTHORIZED_TOPIC"]).toBe(50);
    expect(b.logs.filter((l) => l.includes("message refused"))).toHaveLength(20);
  });

  it("without CURVE: our own message back from a loop is stopped, another broker's old one stored", async () => {
    b = await trustedBroker("loopback", { requireSignatures: true });
    const client = closer.client({ endpoint: b.ipc, retries: 0 });
    const old = new Date(Date.now() - 10 * 60_000).toISOString();
    const back = { ...signMessage(msg("org.test.loop", {}, old), alice), via: ["sec", "other"] };
    const [r] = await client.submit([back]);
    expect(r).toMatchObject({ seq: 0, duplicate: true });
    expect(b.broker.status().submit.loopsStopped).toBe(1);
    // Through some other broker only (not a loop): without CURVE `via` is taken as given, so a message
    // that waited in a forwarding broker's outbox past clockSkew is stored, not lost as STALE.
    const [forwarded] = await client.submit([{ ...back, via: ["other"] }]);
    expect(forwarded).toMatchObject({ duplicate: false });
    expect((forwarded as { seq: number }).seq).toBeGreaterThan(0);
    // Fresh from a client (no via), the same age is STALE.
    const fresh = signMessage(msg("org.test.loop", {}, old), alice);
    const [stale] = await client.submit([fresh]);
    expect((stale as HeraldError).code).toBe("STALE");
  });

  it("without requireSignatures, unsigned messages pass the policy as anonymous", async () => {
    b = await trustedBroker("anon", { policy: { alice: ["org.alice.#"] } });
    const client = closer.client({ endpoint: b.ipc, retries: 0 });
    const [ok] = await client.submit([msg("org.misc.free")]);
    expect(ok).not.toBeInstanceOf(HeraldError);
    const [denied] = await client.submit([msg("org.alice.reserved")]);
    expect((denied as HeraldError).code).toBe("UNAUTHORIZED_TOPIC");
    // A signed message with a bad signature is still refused when signatures are optional.
    const m = signMessage(msg("org.misc.x"), alice);
    const [bad] = await client.submit([{ ...m, body: { x: 1 } }]);
    expect((bad as HeraldError).code).toBe("BAD_SIGNATURE");
  });
});
