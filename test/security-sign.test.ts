import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  HOP_HEADER_PREFIX,
  identityFromSeed,
  revokeKey,
  SIG_HEADER,
  SIGNER_HEADER,
  signedBytes,
  signMessage,
  TrustStore,
  trustKey,
  type VerifyResult,
  verifyMessage,
  vouchLegacy,
} from "../src/security/index.js";
import { decodeEnvelope, encodeEnvelope } from "../src/wire/herald.js";
import { canonicalJson } from "../src/wire/json.js";
import { decodeLegacyEnvelope, encodeLegacyFrames } from "../src/wire/legacy.js";
import { createMessage, type Message } from "../src/wire/message.js";

const alice = identityFromSeed("alice", Buffer.alloc(32, 1));
const mallory = identityFromSeed("mallory", Buffer.alloc(32, 2));
const stranger = identityFromSeed("stranger", Buffer.alloc(32, 3));
const shim = identityFromSeed("shim", Buffer.alloc(32, 4));
const NOW = Date.parse("2026-03-01T12:00:00.000Z");
const opts = { now: NOW, requireSignature: true };

let dir: string;
let trust: TrustStore;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "herald-sign-"));
  for (const id of [alice, mallory, shim]) trustKey(id, dir);
  trust = new TrustStore(dir);
  trust.reload();
});
afterEach(() => {
  trust.stop();
  rmSync(dir, { recursive: true, force: true });
});

function message(): Message {
  return createMessage({
    topic: "org.fedoraproject.prod.bodhi.update.request",
    sentAt: new Date(NOW - 1000).toISOString(),
    headers: { priority: 3, "x.trace": "abc" },
    body: { update: { alias: "FEDORA-2026-1", builds: ["a-1.0", "b-2.1"] }, ratio: 0.1, big: 1e21, neg: -5 },
    origin: { host: "app01", app: "bodhi", pid: 42, user: "apache" },
  });
}

function code(r: VerifyResult): string {
  return r.ok ? "OK" : r.code;
}

function flipBase64Bit(sig: unknown, bit: number): string {
  const b = Buffer.from(String(sig), "base64");
  if (b.length === 0) return "AA==";
  b[bit >> 3]! ^= 1 << (bit & 7);
  return b.toString("base64");
}

describe("signMessage / verifyMessage", () => {
  it("a signed message verifies and names its signer", () => {
    const signed = signMessage(message(), alice);
    expect(signed.headers[SIGNER_HEADER]).toBe(alice.keyId);
    const r = verifyMessage(signed, trust, opts);
    expect(r).toMatchObject({ ok: true, signed: true, identity: "alice", keyId: alice.keyId });
  });

  it("signs domain-separated canonical bytes, without seq/stream/sig/hop headers", () => {
    const signed = signMessage(message(), alice);
    const bytes = signedBytes(signed).toString("utf8");
    expect(bytes.startsWith("herald-sig-v1\n{")).toBe(true);
    expect(bytes).not.toContain(`"${SIG_HEADER}":`);
    expect(bytes).toContain(`"${SIGNER_HEADER}":`);
    const moved = {
      ...signed,
      seq: 7,
      stream: "s1",
      headers: { ...signed.headers, [`${HOP_HEADER_PREFIX}via`]: "hub" },
    };
    expect(signedBytes(moved).toString("utf8")).toBe(bytes);
    expect(code(verifyMessage(moved, trust, opts))).toBe("OK");
  });

  it("covers a header named __proto__ like any other (a relay changing it breaks the signature)", () => {
    const base = message();
    const headers = JSON.parse('{"__proto__":"from-publisher","x.trace":"abc"}') as Message["headers"];
    const signed = signMessage({ ...base, headers }, alice);
    expect(code(verifyMessage(signed, trust, opts))).toBe("OK");
    const wire = decodeEnvelope(encodeEnvelope(signed));
    expect(Object.hasOwn(wire.headers, "__proto__")).toBe(true);
    const changed = JSON.parse(
      JSON.stringify(encodeEnvelope(signed).toString("utf8")).replace("from-publisher", "from-relay"),
    ) as string;
    expect(code(verifyMessage(decodeEnvelope(Buffer.from(changed)), trust, opts))).toBe("BAD_SIGNATURE");
  });

  it("does not modify its input", () => {
    const msg = message();
    const before = canonicalJson(msg);
    signMessage(msg, alice);
    expect(canonicalJson(msg)).toBe(before);
  });

  const tamper: Array<[string, (m: Message) => Message, string]> = [
    ["bit flip in topic", (m) => ({ ...m, topic: m.topic.replace("request", "requesu") }), "BAD_SIGNATURE"],
    ["bit flip in a header", (m) => ({ ...m, headers: { ...m.headers, priority: 2 } }), "BAD_SIGNATURE"],
    ["added header", (m) => ({ ...m, headers: { ...m.headers, extra: true } }), "BAD_SIGNATURE"],
    [
      "forged vouching",
      (m) => ({ ...m, headers: { ...m.headers, "herald.vouched": "legacy" } }),
      "BAD_SIGNATURE",
    ],
    ["bit flip in the body", (m) => ({ ...m, body: { ...m.body, ratio: 0.2 } }), "BAD_SIGNATURE"],
    ["changed origin", (m) => ({ ...m, origin: { ...m.origin, pid: 43 } }), "BAD_SIGNATURE"],
    // A different last character (an id ending in "0" would come back unchanged: 1 run in 16 failed).
    [
      "changed id",
      (m) => ({ ...m, id: `${m.id.slice(0, -1)}${m.id.endsWith("0") ? "1" : "0"}` }),
      "BAD_SIGNATURE",
    ],
    [
      "bit flip in the signature",
      (m) => ({
        ...m,
        headers: { ...m.headers, [SIG_HEADER]: flipBase64Bit(m.headers[SIG_HEADER] as string, 77) },
      }),
      "BAD_SIGNATURE",
    ],
    [
      "truncated signature",
      (m) => ({
        ...m,
        headers: { ...m.headers, [SIG_HEADER]: (m.headers[SIG_HEADER] as string).slice(0, 40) },
      }),
      "BAD_SIGNATURE",
    ],
    [
      "signature header alone",
      (m) => {
        const h = { ...m.headers };
        delete h[SIGNER_HEADER];
        return { ...m, headers: h };
      },
      "BAD_SIGNATURE",
    ],
    [
      "signed by another key, claiming alice",
      (m) => {
        const other = signMessage(m, mallory);
        return { ...other, headers: { ...other.headers, [SIGNER_HEADER]: alice.keyId } };
      },
      "BAD_SIGNATURE",
    ],
    ["signed by an unknown key", (m) => signMessage(m, stranger), "UNKNOWN_KEY"],
    [
      "unsigned when required",
      (m) => {
        const h = { ...m.headers };
        delete h[SIGNER_HEADER];
        delete h[SIG_HEADER];
        return { ...m, headers: h };
      },
      "UNSIGNED",
    ],
  ];
  it.each(tamper.map(([name, mutate, expected]) => ({ name, mutate, expected })))(
    "$name -> $expected",
    ({ mutate, expected }) => {
      const r = verifyMessage(mutate(signMessage(message(), alice)), trust, opts);
      expect(code(r)).toBe(expected);
      if (!r.ok) {
        expect(r.error.code).toBe(expected);
        expect(r.error.message.length).toBeGreaterThan(20);
      }
    },
  );

  it("unsigned is fine when signatures are not required", () => {
    const r = verifyMessage(message(), trust, { now: NOW });
    expect(r).toMatchObject({ ok: true, signed: false, identity: undefined });
  });

  it("stale and future timestamps give STALE with the skew in the message, exactly at the leeway", () => {
    const signed = signMessage(message(), alice); // sent at NOW - 1 s
    const sentAt = NOW - 1000;
    const at = (now: number) => verifyMessage(signed, trust, { ...opts, now, clockSkewMs: 120_000 });
    expect(code(at(sentAt + 120_000))).toBe("OK");
    const old = at(sentAt + 121_000);
    expect(code(old)).toBe("STALE");
    expect(old.ok ? "" : old.error.message).toMatch(/121\.0s ago.*120\.0s/);
    expect(code(at(sentAt - 120_000))).toBe("OK");
    const future = at(sentAt - 121_000);
    expect(code(future)).toBe("STALE");
    expect(future.ok ? "" : future.error.message).toMatch(/121\.0s in the future/);
    expect(code(verifyMessage(signed, trust, { ...opts, now: sentAt + 3_600_000, maxAgeMs: Infinity }))).toBe(
      "OK",
    );
  });

  it("a key revoked while running gives REVOKED_KEY after the reload", async () => {
    trust.stop();
    const live = new TrustStore(dir, { reloadInterval: 25 }).start();
    try {
      const signed = signMessage(message(), alice);
      expect(code(verifyMessage(signed, live, opts))).toBe("OK");
      revokeKey("alice", dir);
      const deadline = Date.now() + 5000;
      while (code(verifyMessage(signed, live, opts)) === "OK" && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(code(verifyMessage(signed, live, opts))).toBe("REVOKED_KEY");
    } finally {
      live.stop();
    }
  });
});

describe("signatures survive every re-serialisation", () => {
  it("encodeEnvelope/decodeEnvelope with new seq/stream", () => {
    const signed = signMessage(message(), alice);
    const hop = decodeEnvelope(encodeEnvelope({ ...signed, seq: 99, stream: "x" }));
    expect(code(verifyMessage(hop, trust, opts))).toBe("OK");
  });

  it("JSON round trips (twice, with reordered keys)", () => {
    const signed = signMessage(message(), alice);
    const reverse = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).reverse()) as T;
    const reordered = reverse({ ...signed, headers: reverse(signed.headers), body: reverse(signed.body) });
    const back = JSON.parse(JSON.stringify(JSON.parse(JSON.stringify(reordered)))) as Message;
    expect(code(verifyMessage(back, trust, opts))).toBe("OK");
  });

  it("a legacy message vouched for by the shim carries its fedmsg.* headers and verifies after hops", () => {
    const fedmsg = Buffer.from(
      JSON.stringify({
        topic: "org.fedoraproject.prod.bodhi.update.request",
        msg: { update: { alias: "FEDORA-2026-1" }, weird: 1.5 },
        timestamp: (NOW - 500) / 1000,
        msg_id: "2026-0f0e0d0c-legacy",
        i: 3,
        username: "apache",
        crypto: "x509",
        signature: "c2ln",
        certificate: "Y2VydA==",
      }),
    );
    const { message: ingested } = decodeLegacyEnvelope(fedmsg, { host: "app01", app: "bodhi" });
    const vouched = vouchLegacy(ingested, shim);
    const back = decodeEnvelope(encodeEnvelope(JSON.parse(JSON.stringify(vouched)) as Message));
    const r = verifyMessage(back, trust, opts);
    expect(r).toMatchObject({ ok: true, identity: "shim", vouched: "legacy" });
    expect(back.headers["fedmsg.signature"]).toBe("c2ln");
    // Re-emitted on the legacy port, the fedmsg fields come back as they were (herald.* are not fedmsg fields).
    const [, frame] = encodeLegacyFrames(back, 0);
    expect(JSON.parse(frame.toString())).toMatchObject({
      msg_id: "2026-0f0e0d0c-legacy",
      i: 3,
      signature: "c2ln",
    });
  });
});

describe("property: no mutation of a signed message verifies", () => {
  const base = signMessage(message(), alice);
  const signedView = (m: Message): string => {
    try {
      return canonicalJson({ ...m, seq: undefined, stream: undefined, headers: m.headers });
    } catch {
      return "unencodable";
    }
  };
  const scalar = fc.oneof(
    fc.string({ maxLength: 8 }),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
  );
  const headerKey = fc.oneof(
    fc.constantFrom(SIGNER_HEADER, SIG_HEADER, "herald.vouched", "priority", "x.trace"),
    fc.string({ maxLength: 6 }).filter((k) => !k.startsWith(HOP_HEADER_PREFIX)),
  );
  const mutation: fc.Arbitrary<(m: Message) => Message> = fc.oneof(
    fc.string({ maxLength: 30 }).map((t) => (m: Message) => ({ ...m, topic: t })),
    fc.string({ maxLength: 40 }).map((v) => (m: Message) => ({ ...m, id: v })),
    fc.string({ maxLength: 30 }).map((v) => (m: Message) => ({ ...m, sentAt: v })),
    fc.string({ maxLength: 10 }).map((v) => (m: Message) => ({ ...m, schema: v })),
    fc.integer().map((v) => (m: Message) => ({ ...m, schemaVersion: v })),
    fc.tuple(headerKey, scalar).map(([k, v]) => (m: Message) => ({
      ...m,
      headers: { ...m.headers, [k]: v },
    })),
    headerKey.map((k) => (m: Message) => {
      const h = { ...m.headers };
      delete h[k];
      return { ...m, headers: h };
    }),
    fc.tuple(fc.string({ maxLength: 8 }), fc.jsonValue()).map(([k, v]) => (m: Message) => ({
      ...m,
      body: { ...m.body, [k]: v } as Message["body"],
    })),
    fc.tuple(fc.constantFrom("host", "app", "pid", "user"), scalar).map(([k, v]) => (m: Message) => ({
      ...m,
      origin: { ...m.origin, [k]: v } as Message["origin"],
    })),
    fc.nat(511).map((bit) => (m: Message) => ({
      ...m,
      headers: { ...m.headers, [SIG_HEADER]: flipBase64Bit(m.headers[SIG_HEADER] as string, bit) },
    })),
    fc.nat(87).map((n) => (m: Message) => ({
      ...m,
      headers: { ...m.headers, [SIG_HEADER]: String(m.headers[SIG_HEADER]).slice(0, n) },
    })),
  );

  it("random mutations (1 to 3 at once) never return ok", () => {
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (mutations) => {
        const mutated = mutations.reduce((m, f) => f(m), base);
        fc.pre(signedView(mutated) !== signedView(base));
        const r = verifyMessage(mutated, trust, { ...opts, maxAgeMs: Infinity, clockSkewMs: Infinity });
        expect(r.ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });
});
