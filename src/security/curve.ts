import type { KeyObject } from "node:crypto";
import { SecurityError } from "../errors.js";
import { nodeCrypto } from "../util/node-crypto.js";

/**
 * Raw-key plumbing for Ed25519 (signing) and X25519 (CurveZMQ), using only node:crypto plus the
 * Edwards-to-Montgomery map for public keys. Node imports raw keys only through DER, so the fixed
 * ASN.1 prefixes below wrap 32 raw bytes into PKCS#8 / SubjectPublicKeyInfo.
 */
const ED25519_PKCS8 = Buffer.from("302e020100300506032b657004220420", "hex");
const ED25519_SPKI = Buffer.from("302a300506032b6570032100", "hex");
const X25519_PKCS8 = Buffer.from("302e020100300506032b656e04220420", "hex");

function badKey(what: string): SecurityError {
  return new SecurityError("SECURITY", `${what}: regenerate the key with 'herald keys generate'`);
}

export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw badKey(`an Ed25519 seed is 32 bytes, got ${seed.length}`);
  return nodeCrypto().createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8, seed]),
    format: "der",
    type: "pkcs8",
  });
}

export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw badKey(`an Ed25519 public key is 32 bytes, got ${raw.length}`);
  try {
    return nodeCrypto().createPublicKey({
      key: Buffer.concat([ED25519_SPKI, raw]),
      format: "der",
      type: "spki",
    });
  } catch (err) {
    throw new SecurityError("SECURITY", "not a valid Ed25519 public key: check the .pub file", {
      cause: err,
    });
  }
}

/** The last 32 bytes of an SPKI encoding are the raw public key for both curves. */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = nodeCrypto().createPublicKey(key).export({ format: "der", type: "spki" });
  return der.subarray(der.length - 32);
}

/**
 * libsodium's crypto_sign_ed25519_sk_to_curve25519: the X25519 scalar is the clamped first half of
 * SHA-512(seed), i.e. the very scalar Ed25519 itself signs with.
 */
export function x25519SecretFromSeed(seed: Uint8Array): Buffer {
  const h = nodeCrypto().createHash("sha512").update(seed).digest().subarray(0, 32);
  const s = Buffer.from(h);
  s[0]! &= 248;
  s[31]! &= 127;
  s[31]! |= 64;
  return s;
}

export function x25519PublicFromSecret(secret: Uint8Array): Buffer {
  if (secret.length !== 32) throw badKey(`an X25519 secret key is 32 bytes, got ${secret.length}`);
  const key = nodeCrypto().createPrivateKey({
    key: Buffer.concat([X25519_PKCS8, secret]),
    format: "der",
    type: "pkcs8",
  });
  return rawPublicKey(key);
}

const P = (1n << 255n) - 19n;

function modPow(base: bigint, exp: bigint): bigint {
  let result = 1n;
  let b = ((base % P) + P) % P;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

function fromLittleEndian(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

function toLittleEndian(n: bigint): Buffer {
  const out = Buffer.alloc(32);
  let v = n;
  for (let i = 0; i < 32; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * The y coordinates of Ed25519's eight points of small order (the identity, (0,-1), the two of order 4 with
 * y = 0, and the four of order 8), which libsodium's has_small_order refuses; x's sign bit is not part of y.
 */
const SMALL_ORDER_Y: readonly bigint[] = [
  0n,
  1n,
  P - 1n,
  0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n,
  P - 0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n,
];

/**
 * libsodium's crypto_sign_ed25519_pk_to_curve25519: the birational map u = (1 + y) / (1 - y) mod p
 * from the Edwards y coordinate to the Montgomery u coordinate. The sign bit of x is irrelevant to u.
 */
export function ed25519PublicToX25519(edPublic: Uint8Array): Buffer {
  if (edPublic.length !== 32) throw badKey(`an Ed25519 public key is 32 bytes, got ${edPublic.length}`);
  const bytes = Buffer.from(edPublic);
  bytes[31]! &= 0x7f;
  const y = fromLittleEndian(bytes);
  if (y >= P) throw badKey("Ed25519 public key is not canonically encoded");
  // A point of small order signs for anyone (signatures with S = 0 verify): never a key to trust.
  if (SMALL_ORDER_Y.includes(y)) throw badKey("Ed25519 public key is a point of small order");
  const denominator = (1n - y + P) % P;
  if (denominator === 0n) throw badKey("Ed25519 public key is the identity point");
  const u = ((1n + y) * modPow(denominator, P - 2n)) % P;
  return toLittleEndian(u);
}
