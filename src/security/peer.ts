import { nodeCrypto } from "../util/node-crypto.js";
import type { Identity } from "./keys.js";
import type { KeyLookup } from "./sign.js";

/**
 * Who is this Router peer? zeromq.js exposes no per-message metadata (no ZAP User-Id), and libzmq's
 * ZAP request does not carry the client's routing id (its "identity" frame is the server socket's own
 * option), so ZAP alone cannot say which trusted client sent a message. Instead the client's routing
 * id is a signed claim:
 *
 *   routingId = `<keyId>~<nonce>~<base64url Ed25519 sig over "herald-routing-id-v1\n" + server CURVE key
 *                + "\n" + keyId + "\n" + nonce>`
 *
 * Only the key's holder can make one; it names the server it is for (useless at another server); the
 * nonce makes it unique per socket so many processes can share one identity without routing-id clashes
 * on the Router. It travels inside the CURVE-encrypted handshake, so only the server ever sees it:
 * the server must not log or forward routing ids (they are bearer tokens for that server).
 */
const ROUTING_DOMAIN = "herald-routing-id-v1\n";
const NONCE_RE = /^[0-9a-f]{12}$/;

function claim(serverPublicZ85: string, keyId: string, nonce: string): Buffer {
  return Buffer.from(`${ROUTING_DOMAIN}${serverPublicZ85}\n${keyId}\n${nonce}`, "utf8");
}

/** A fresh signed routing id for a client socket of `identity` talking to the given CURVE server. */
export function routingIdFor(
  identity: Identity,
  serverPublicZ85: string,
  nonce = nodeCrypto().randomBytes(6).toString("hex"),
): string {
  const sig = nodeCrypto().sign(null, claim(serverPublicZ85, identity.keyId, nonce), identity.signKey);
  return `${identity.keyId}~${nonce}~${sig.toString("base64url")}`;
}

export interface Peer {
  name: string;
  keyId: string;
}

/** Server side: map a Router routing id to the identity that signed it (cached, revocation-aware). */
export class PeerIdentities {
  private readonly cache = new Map<string, string | null>();

  constructor(
    private readonly trust: KeyLookup,
    private readonly serverPublicZ85: string,
    private readonly maxCache = 10_000,
  ) {}

  /** The identity name, or undefined for anonymous, forged, unknown or revoked peers. */
  identityOf(routingId: Uint8Array | string): string | undefined {
    return this.peerOf(routingId)?.name;
  }

  peerOf(routingId: Uint8Array | string): Peer | undefined {
    const rid = typeof routingId === "string" ? routingId : Buffer.from(routingId).toString("utf8");
    let keyId = this.cache.get(rid);
    if (keyId === undefined) {
      keyId = this.check(rid);
      if (keyId === undefined) return undefined; // unknown key: not cached, a reload may add it
      if (this.cache.size >= this.maxCache) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(rid, keyId);
    }
    if (keyId === null) return undefined;
    const key = this.trust.byKeyId(keyId);
    return key && !key.revoked ? { name: key.name, keyId } : undefined;
  }

  /** keyId if the claim is valid, null if it is malformed or forged, undefined if the key is unknown. */
  private check(rid: string): string | null | undefined {
    const parts = rid.split("~");
    if (parts.length !== 3) return null;
    const [keyId, nonce, sig] = parts as [string, string, string];
    if (!NONCE_RE.test(nonce)) return null;
    const sigBytes = Buffer.from(sig, "base64url");
    if (sigBytes.length !== 64 || sigBytes.toString("base64url") !== sig) return null;
    const key = this.trust.byKeyId(keyId);
    if (!key) return undefined;
    return nodeCrypto().verify(null, claim(this.serverPublicZ85, keyId, nonce), key.verifyKey, sigBytes)
      ? keyId
      : null;
  }
}
