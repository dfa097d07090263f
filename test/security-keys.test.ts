import { generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { HeraldError, SecurityError } from "../src/errors.js";
import {
  ed25519PublicToX25519,
  generateIdentity,
  identityFromSeed,
  listKeys,
  loadIdentity,
  loadPublicKey,
  parseKeyFile,
  publicKeyText,
  revokeKey,
  TrustStore,
  trustKey,
  x25519PublicFromSecret,
  x25519SecretFromSeed,
  z85Decode,
  z85Encode,
} from "../src/security/index.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "herald-keys-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, probe: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("Z85", () => {
  it("matches the ZeroMQ RFC 32 test vector", () => {
    const bytes = Buffer.from([0x86, 0x4f, 0xd2, 0x6f, 0xb5, 0x59, 0xf7, 0x5b]);
    expect(z85Encode(bytes)).toBe("HelloWorld");
    expect(z85Decode("HelloWorld").equals(bytes)).toBe(true);
  });

  it("round-trips arbitrary 4-byte-aligned data", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (raw) => {
        const data = raw.subarray(0, raw.length - (raw.length % 4));
        expect(z85Decode(z85Encode(data)).equals(Buffer.from(data))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it("rejects bad lengths, characters and overflowing groups with ProtocolError", () => {
    expect(() => z85Encode(Buffer.alloc(3))).toThrow(/multiple of 4/);
    expect(() => z85Decode("abcd")).toThrow(/multiple of 5/);
    expect(() => z85Decode("abc d")).toThrow(/invalid character/);
    expect(() => z85Decode("#####")).toThrow(/exceeds 32 bits/);
  });

  it("decodes zeromq.curveKeyPair() output to 32-byte X25519 keys that node:crypto agrees with", () => {
    for (let i = 0; i < 20; i++) {
      const { publicKey, secretKey } = zmq.curveKeyPair();
      expect(publicKey).toHaveLength(40);
      const sec = z85Decode(secretKey);
      const pub = z85Decode(publicKey);
      expect(sec).toHaveLength(32);
      expect(pub).toHaveLength(32);
      expect(z85Encode(pub)).toBe(publicKey);
      expect(x25519PublicFromSecret(sec).equals(pub)).toBe(true);
    }
  });

  it("matches the zmq_curve(7) example key pairs", () => {
    const pairs = [
      ["Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID", "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"],
      ["rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"],
    ] as const;
    for (const [pub, sec] of pairs) expect(z85Encode(x25519PublicFromSecret(z85Decode(sec)))).toBe(pub);
  });
});

describe("Ed25519 -> X25519 derivation", () => {
  it("matches libsodium's ed25519_convert vector", () => {
    const seed = Buffer.from("421151a459faeade3d247115f94aedae42318124095afabe4d1451a559faedee", "hex");
    const id = identityFromSeed("vector", seed);
    expect(id.ed25519Public.toString("hex")).toBe(
      "b5076a8474a832daee4dd5b4040983b6623b5f344aca57d4d6ee4baf3f259e6e",
    );
    expect(x25519SecretFromSeed(seed).toString("hex")).toBe(
      "8052030376d47112be7f73ed7a019293dd12ad910b654455798b4667d73de166",
    );
    expect(id.curvePublicRaw.toString("hex")).toBe(
      "f1814f0e8ff1043d8a44d25babff3cedcae6c22c3edaa48f857ae70de2baae50",
    );
  });

  it("matches the RFC 8032 test 1 key's known X25519 image", () => {
    const seed = Buffer.from("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "hex");
    expect(identityFromSeed("rfc", seed).curvePublicRaw.toString("hex")).toBe(
      "d85e07ec22b0ad881537c2f44d662d1a143cf830c57aca4305d85c7a90f6b62e",
    );
  });

  it("birational map of the public key equals node:crypto's X25519 public of the derived secret", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        const id = identityFromSeed("p", seed);
        expect(
          ed25519PublicToX25519(id.ed25519Public).equals(x25519PublicFromSecret(x25519SecretFromSeed(seed))),
        ).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("node:crypto X25519 raw keys round-trip through Z85", () => {
    const { privateKey, publicKey } = generateKeyPairSync("x25519");
    const d = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
    const x = Buffer.from(publicKey.export({ format: "jwk" }).x!, "base64url");
    expect(z85Decode(z85Encode(x25519PublicFromSecret(d))).equals(x)).toBe(true);
  });
});

describe("key files", () => {
  it("generate writes a 0600 .key and a 0644 .pub; load gives the same identity", () => {
    const id = generateIdentity("bodhi.app01", dir);
    expect(statSync(join(dir, "bodhi.app01.key")).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, "bodhi.app01.pub")).mode & 0o777).toBe(0o644);
    const loaded = loadIdentity("bodhi.app01", dir);
    expect(loaded.keyId).toBe(id.keyId);
    expect(loaded.curveSecret).toBe(id.curveSecret);
    expect(loaded.keyId).toMatch(/^bodhi\.app01:[0-9a-f]{16}$/);
    expect(loadPublicKey(join(dir, "bodhi.app01.pub")).curvePublic).toBe(id.curvePublic);
    expect(loadIdentity(join(dir, "bodhi.app01.key")).name).toBe("bodhi.app01");
  });

  it("refuses to overwrite an existing identity unless asked", () => {
    generateIdentity("a", dir);
    expect(() => generateIdentity("a", dir)).toThrow(/already exists/);
    expect(generateIdentity("a", dir, { overwrite: true }).name).toBe("a");
  });

  it("refuses a secret key file readable by group or others, naming the file and the fix", () => {
    generateIdentity("leaky", dir);
    const file = join(dir, "leaky.key");
    chmodSync(file, 0o640);
    let err: unknown;
    try {
      loadIdentity("leaky", dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SecurityError);
    expect((err as Error).message).toContain(`chmod 600 ${file}`);
    chmodSync(file, 0o600);
    expect(loadIdentity("leaky", dir).name).toBe("leaky");
  });

  it("rejects a .pub whose curve key or key id does not belong to its Ed25519 key", () => {
    const a = generateIdentity("a", dir);
    const b = generateIdentity("b", dir);
    const forged = JSON.parse(publicKeyText(a)) as Record<string, string>;
    forged["curvePublic"] = b.curvePublic;
    expect(() => parseKeyFile(JSON.stringify(forged), "forged.pub")).toThrow(/curvePublic does not belong/);
    const forged2 = JSON.parse(publicKeyText(a)) as Record<string, string>;
    forged2["keyId"] = b.keyId;
    expect(() => parseKeyFile(JSON.stringify(forged2), "forged.pub")).toThrow(/keyId does not match/);
    expect(() => loadIdentity(join(dir, "a.pub"))).toThrow(SecurityError);
  });

  it("rejects a .pub whose Ed25519 key is a point of small order (anyone can sign for it), either sign bit", () => {
    const a = generateIdentity("small", dir);
    const smallOrder = [
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
      "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
      "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ];
    // The same .pub as a's, its key replaced: only the key can be what is refused.
    const withKey = (key: Buffer): string => {
      const o = JSON.parse(publicKeyText(a)) as Record<string, unknown>;
      delete o["curvePublic"];
      delete o["keyId"];
      return JSON.stringify({ ...o, ed25519Public: key.toString("base64") });
    };
    expect(parseKeyFile(withKey(a.ed25519Public), "small.pub").identity.name).toBe("small");
    for (const hex of smallOrder) {
      for (const signBit of [0, 0x80]) {
        const key = Buffer.from(hex, "hex");
        key[31] = (key[31]! & 0x7f) | signBit;
        expect(() => parseKeyFile(withKey(key), "evil.pub"), hex).toThrow(
          /small order|identity point|not canonically encoded/,
        );
      }
    }
  });

  it("missing key file error names the file and how to create it", () => {
    expect(() => loadIdentity("nobody", dir)).toThrow(/nobody\.key does not exist.*herald keys generate/);
  });

  it("key-file parser throws only HeraldError on garbage (property)", () => {
    const valid = publicKeyText(identityFromSeed("x", Buffer.alloc(32, 7)));
    const mutated = fc
      .tuple(fc.nat(valid.length - 1), fc.string({ maxLength: 3 }), fc.nat(4))
      .map(([at, s, del]) => valid.slice(0, at) + s + valid.slice(at + del));
    const shaped = fc
      .record(
        {
          format: fc.oneof(
            fc.constant("herald-public-key-v1"),
            fc.constant("herald-secret-key-v1"),
            fc.anything(),
          ),
          name: fc.oneof(fc.string(), fc.anything()),
          createdAt: fc.oneof(fc.constant("2026-01-01T00:00:00Z"), fc.anything()),
          ed25519Public: fc.oneof(
            fc.uint8Array({ minLength: 30, maxLength: 34 }).map((b) => Buffer.from(b).toString("base64")),
            fc.anything(),
          ),
          ed25519Seed: fc.oneof(
            fc.uint8Array({ minLength: 31, maxLength: 33 }).map((b) => Buffer.from(b).toString("base64")),
            fc.anything(),
          ),
          curvePublic: fc.oneof(fc.string({ minLength: 40, maxLength: 40 }), fc.anything()),
          keyId: fc.anything(),
        },
        { requiredKeys: [] },
      )
      .map((o) => JSON.stringify(o));
    fc.assert(
      fc.property(fc.oneof(fc.string(), mutated, shaped, fc.json()), (text) => {
        try {
          parseKeyFile(text, "fuzz.pub");
        } catch (err) {
          expect(err).toBeInstanceOf(HeraldError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("trust directory", () => {
  it("revokes by the file's own name whatever form the trust dir is given in (./trust, trust/)", () => {
    const keys = join(dir, "keys");
    const a = generateIdentity("alice", keys);
    for (const [i, form] of [`${join(dir, "t1")}/`, `${join(dir, ".", "t2")}//`].entries()) {
      trustKey(join(keys, "alice.pub"), form);
      const moved = revokeKey("alice", form);
      expect(moved).toBe(join(dir, `t${i + 1}`, "revoked", "alice.pub"));
      const store = new TrustStore(form);
      store.reload();
      expect(store.byKeyId(a.keyId)?.revoked).toBe(true);
      expect(() => trustKey(join(keys, "alice.pub"), form)).toThrow(/revoked/);
    }
  });

  it("list, trust and revoke; revoked keys stay known", () => {
    const keys = join(dir, "keys");
    const trust = join(dir, "trust");
    const a = generateIdentity("alice", keys);
    const b = generateIdentity("bob", keys);
    trustKey(join(keys, "alice.pub"), trust);
    trustKey(b, trust);
    const store = new TrustStore(trust);
    store.reload();
    expect(store.byKeyId(a.keyId)?.revoked).toBe(false);
    expect(store.byCurveKey(b.curvePublicRaw)?.name).toBe("bob");
    const moved = revokeKey("alice", trust);
    expect(moved).toBe(join(trust, "revoked", "alice.pub"));
    expect(existsSync(join(trust, "alice.pub"))).toBe(false);
    const change = store.reload();
    expect(change.revoked).toEqual([a.keyId]);
    expect(store.byKeyId(a.keyId)?.revoked).toBe(true);
    expect(store.byName("alice")).toEqual([]);
    const listed = listKeys(keys, trust);
    expect(listed.problems).toEqual([]);
    const kinds = listed.keys.map((k) => `${k.kind}:${k.name}`).sort();
    expect(kinds).toEqual(["own:alice", "own:bob", "revoked:alice", "trusted:bob"]);
    expect(() => revokeKey("carol", trust)).toThrow(/no trusted key 'carol'/);
    // Trusting a revoked key again would print "trusted" and change nothing (revoked wins): refused.
    expect(() => trustKey(join(keys, "alice.pub"), trust)).toThrow(/is revoked .*alice\.pub.*new key pair/);
    expect(existsSync(join(trust, "alice.pub"))).toBe(false);
    // A new key pair of the same name is trusted as usual.
    trustKey(generateIdentity("alice", join(dir, "keys2")), trust);
    expect(store.reload().added).toHaveLength(1);
  });

  it("revoking a second key of the same name keeps both revoked files", () => {
    const trust = join(dir, "trust");
    const old = identityFromSeed("svc", Buffer.alloc(32, 1));
    const next = identityFromSeed("svc", Buffer.alloc(32, 2));
    trustKey(old, trust);
    revokeKey("svc", trust);
    trustKey(next, trust);
    revokeKey(next.keyId, trust);
    const store = new TrustStore(trust);
    store.reload();
    expect(store.byKeyId(old.keyId)?.revoked).toBe(true);
    expect(store.byKeyId(next.keyId)?.revoked).toBe(true);
  });

  it("a broken or secret file in the trust dir trusts nobody and is reported", () => {
    const trust = join(dir, "trust");
    generateIdentity("sneaky", trust);
    writeFileSync(join(trust, "junk.pub"), "not json");
    const store = new TrustStore(trust);
    const change = store.reload();
    expect(store.keys()).toHaveLength(1); // sneaky.pub only; sneaky.key is not a .pub and is ignored
    expect(change.errors.join("\n")).toMatch(/junk\.pub/);
  });

  it("reload picks up added, rotated and revoked keys without a restart", async () => {
    const trust = join(dir, "trust");
    const store = new TrustStore(trust, { reloadInterval: 25 }).start();
    try {
      const a = identityFromSeed("alice", Buffer.alloc(32, 3));
      expect(store.byKeyId(a.keyId)).toBeUndefined();
      trustKey(a, trust);
      await until("alice trusted", () => store.byKeyId(a.keyId));
      const a2 = identityFromSeed("alice", Buffer.alloc(32, 4));
      // Rotation: same file name, new key; replacing a trusted key needs force, naming both key ids.
      expect(() => trustKey(a2, trust)).toThrow(
        `already trusts ${a.keyId}; refusing to replace it with ${a2.keyId}`,
      );
      trustKey(a2, trust, { force: true });
      await until("rotated key", () => store.byKeyId(a2.keyId));
      expect(store.byKeyId(a.keyId)).toBeUndefined();
      revokeKey("alice", trust);
      const k = await until("alice revoked", () => (store.byKeyId(a2.keyId)?.revoked ? true : undefined));
      expect(k).toBe(true);
    } finally {
      store.stop();
    }
  });
});
