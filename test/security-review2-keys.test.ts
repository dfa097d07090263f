import { spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SecurityError } from "../src/errors.js";
import {
  generateIdentity,
  identityFromSeed,
  listKeys,
  loadIdentity,
  publicKeyText,
  revokeKey,
  signMessage,
  TrustStore,
  trustKey,
  verifyMessage,
} from "../src/security/index.js";
import { createMessage } from "../src/wire/message.js";
import { CLI } from "./helpers/serve.js";

// Key and trust files: the checks docs/security.md promises, and the ones it should (security review 2).

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "herald-keys2-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const asRoot = process.getuid?.() === 0;
const NOBODY = 65534;

function refusal(f: () => unknown): SecurityError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(SecurityError);
    return err as SecurityError;
  }
  throw new Error("not refused");
}

describe("loadIdentity: a secret key nobody else chose or can swap", () => {
  it.skipIf(!asRoot)("refuses a 0600 .key owned by another user, root included, naming the fix", () => {
    const keys = join(dir, "keys");
    generateIdentity("svc", keys);
    const file = join(keys, "evil.key");
    copyFileSync(join(keys, "svc.key"), file);
    chmodSync(file, 0o600);
    chownSync(file, NOBODY, NOBODY);
    const err = refusal(() => loadIdentity("evil", keys));
    expect(err.message).toContain(`${file} is owned by uid ${NOBODY}, not by this user (uid 0)`);
    expect(err.message).toContain(`chown 0 ${file}`);
    chownSync(file, 0, 0);
    expect(loadIdentity("evil", keys).name).toBe("svc");
  });

  it.skipIf(!asRoot)("refuses a keys directory another (non-root) user owns", () => {
    const keys = join(dir, "keys");
    generateIdentity("svc", keys);
    chownSync(keys, NOBODY, NOBODY);
    expect(refusal(() => loadIdentity("svc", keys)).message).toContain(`keys directory ${keys}`);
  });

  it("refuses a keys directory group or others can write, unless sticky; names the chmod", () => {
    const keys = join(dir, "keys");
    generateIdentity("svc", keys);
    for (const mode of [0o777, 0o770, 0o720]) {
      chmodSync(keys, mode);
      const err = refusal(() => loadIdentity("svc", keys));
      expect(err.message).toContain(`keys directory ${keys}`);
      expect(err.message).toContain(`chmod go-w ${keys}`);
    }
    // Sticky (like /tmp): only a file's owner may rename or remove it, and the key is ours.
    chmodSync(keys, 0o1777);
    expect(loadIdentity("svc", keys).name).toBe("svc");
    chmodSync(keys, 0o755);
    expect(loadIdentity("svc", keys).name).toBe("svc");
  });

  it("checks the directory a symlinked .key really lives in", () => {
    const keys = join(dir, "keys");
    const elsewhere = join(dir, "elsewhere");
    generateIdentity("svc", elsewhere);
    mkdirSync(keys, { mode: 0o700 });
    symlinkSync(join(elsewhere, "svc.key"), join(keys, "svc.key"));
    expect(loadIdentity("svc", keys).name).toBe("svc");
    chmodSync(elsewhere, 0o777);
    expect(refusal(() => loadIdentity("svc", keys)).message).toContain(`keys directory ${elsewhere}`);
  });
});

describe("trust directory permissions", () => {
  it("warns about a world-writable trust dir or .pub once, not at every poll, naming the chmod", () => {
    const trust = join(dir, "trust");
    trustKey(generateIdentity("alice", join(dir, "keys")), trust);
    const pub = join(trust, "alice.pub");
    chmodSync(trust, 0o777);
    chmodSync(pub, 0o666);
    const warned: string[] = [];
    const store = new TrustStore(trust, { logger: { info: () => {}, warn: (m) => void warned.push(m) } });
    store.reload();
    store.reload();
    expect(warned).toEqual([
      `trust directory ${trust} is writable by everyone (mode 777): anyone on this host can make their key trusted; run 'chmod o-w ${trust}'`,
      `trusted key file ${pub} is writable by everyone (mode 666): anyone on this host can make their key trusted; run 'chmod o-w ${pub}'`,
    ]);
    // A reload that changes the trusted keys says it again: someone is looking at the trust dir then.
    trustKey(generateIdentity("bob", join(dir, "keys")), trust);
    store.reload();
    expect(warned).toHaveLength(4);
    expect(listKeys(join(dir, "keys"), trust).warnings).toHaveLength(2);
    chmodSync(trust, 0o750);
    chmodSync(pub, 0o644);
    store.reload();
    expect(store.permissionWarnings()).toEqual([]);
    expect(listKeys(join(dir, "keys"), trust).warnings).toEqual([]);
  });
});

describe("trustKey", () => {
  it("refuses to replace another key trusted under the same name without force, naming both key ids", () => {
    const trust = join(dir, "trust");
    const a = generateIdentity("other", join(dir, "k1"));
    const impostor = generateIdentity("other", join(dir, "k2"));
    trustKey(join(dir, "k1", "other.pub"), trust);
    trustKey(join(dir, "k1", "other.pub"), trust); // the same key again: fine
    const err = refusal(() => trustKey(join(dir, "k2", "other.pub"), trust));
    expect(err.message).toContain(`already trusts ${a.keyId}; refusing to replace it with ${impostor.keyId}`);
    expect(err.message).toContain("--force");
    const store = new TrustStore(trust);
    store.reload();
    expect(store.byKeyId(a.keyId)?.revoked).toBe(false);
    trustKey(join(dir, "k2", "other.pub"), trust, { force: true });
    store.reload();
    expect(store.byKeyId(a.keyId)).toBeUndefined();
    expect(store.byKeyId(impostor.keyId)?.revoked).toBe(false);
  });
});

describe("revocation is of the public key, whatever the name", () => {
  it("a revoked key renamed in its .pub is refused by trustKey and revoked in the store, for signatures and CURVE", () => {
    const trust = join(dir, "trust");
    const seed = Buffer.alloc(32, 7);
    const other = identityFromSeed("other", seed);
    const renamed = identityFromSeed("other2", seed);
    trustKey(other, trust);
    revokeKey("other", trust);
    const err = refusal(() => trustKey(renamed, trust));
    expect(err.code).toBe("REVOKED_KEY");
    expect(err.message).toContain(`key ${renamed.keyId} is revoked`);
    expect(err.message).toContain(`as ${other.keyId}`);
    // Copied in by hand: the store still counts it revoked.
    writeFileSync(join(trust, "other2.pub"), publicKeyText(renamed));
    const store = new TrustStore(trust);
    store.reload();
    expect(store.byKeyId(renamed.keyId)?.revoked).toBe(true);
    expect(store.byCurveKey(renamed.curvePublicRaw)?.revoked).toBe(true);
    expect(store.byName("other2")).toEqual([]);
    const v = verifyMessage(signMessage(createMessage({ topic: "org.x", body: {} }), renamed), store);
    expect(v.ok ? "ok" : v.code).toBe("REVOKED_KEY");
    expect(
      listKeys(join(dir, "none"), trust)
        .keys.map((k) => `${k.kind}:${k.name}`)
        .sort(),
    ).toEqual(["revoked:other", "revoked:other2"]);
  });
});

function herald(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, HERALD_CONFIG: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("herald keys (CLI)", () => {
  it("trust refuses a second key for a name without --force; list warns about a world-writable trust dir", async () => {
    const trust = join(dir, "trust");
    const first = generateIdentity("other", join(dir, "k1"));
    const second = generateIdentity("other", join(dir, "k2"));
    expect((await herald(["keys", "trust", join(dir, "k1", "other.pub"), "--trust-dir", trust])).code).toBe(
      0,
    );
    const refused = await herald(["keys", "trust", join(dir, "k2", "other.pub"), "--trust-dir", trust]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `already trusts ${first.keyId}; refusing to replace it with ${second.keyId}`,
    );
    const forced = await herald([
      "keys",
      "trust",
      join(dir, "k2", "other.pub"),
      "--force",
      "--trust-dir",
      trust,
    ]);
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain(`trusted ${second.keyId}`);
    const misplaced = await herald(["keys", "generate", "x", "--force", "--keys-dir", join(dir, "k3")]);
    expect(misplaced.code).toBe(2);
    expect(misplaced.stderr).toContain("--force applies to 'herald keys trust' only");

    chmodSync(trust, 0o777);
    const list = await herald(["keys", "list", "--keys-dir", join(dir, "none"), "--trust-dir", trust]);
    expect(list.code).toBe(0); // a warning, not a failure: the keys listed are what they are
    expect(list.stderr).toContain(`warning: trust directory ${trust} is writable by everyone`);
  });
});
