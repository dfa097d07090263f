import type { KeyObject } from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { HeraldError, SecurityError } from "../errors.js";
import { nodeCrypto } from "../util/node-crypto.js";
import {
  ed25519PrivateKey,
  ed25519PublicKey,
  ed25519PublicToX25519,
  rawPublicKey,
  x25519PublicFromSecret,
  x25519SecretFromSeed,
} from "./curve.js";
import { z85Encode } from "./z85.js";

/**
 * One identity = one Ed25519 key pair. Its CURVE (X25519) key pair is derived from the same seed the
 * way libsodium does it, so the CURVE public key is a pure function of the Ed25519 public key and a
 * .pub file can never pair one identity's signing key with another's transport key.
 */
export interface PublicIdentity {
  name: string;
  /** `<name>:<first 16 hex of sha256(ed25519 public key)>`: stable, short, changes on rotation. */
  keyId: string;
  ed25519Public: Buffer;
  /** Ed25519 public key for node:crypto verify(). */
  verifyKey: KeyObject;
  /** CURVE public key, Z85 (40 characters), as zeromq.js wants it. */
  curvePublic: string;
  curvePublicRaw: Buffer;
  createdAt: string;
}

export interface Identity extends PublicIdentity {
  signKey: KeyObject;
  /** CURVE secret key, Z85. */
  curveSecret: string;
}

export const SECRET_FORMAT = "herald-secret-key-v1";
export const PUBLIC_FORMAT = "herald-public-key-v1";
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

export function nameProblem(name: unknown): string | undefined {
  if (typeof name !== "string" || !NAME_RE.test(name))
    return "identity names are 1-128 characters of letters, digits and . _ @ - (starting with a letter or digit)";
  return undefined;
}

function assertName(name: string): void {
  const problem = nameProblem(name);
  if (problem) throw new SecurityError("SECURITY", `bad identity name ${JSON.stringify(name)}: ${problem}`);
}

export function keyIdOf(name: string, ed25519Public: Uint8Array): string {
  return `${name}:${nodeCrypto().createHash("sha256").update(ed25519Public).digest("hex").slice(0, 16)}`;
}

export function publicIdentity(name: string, ed25519Public: Uint8Array, createdAt: string): PublicIdentity {
  assertName(name);
  const raw = Buffer.from(ed25519Public);
  const curveRaw = ed25519PublicToX25519(raw);
  return {
    name,
    keyId: keyIdOf(name, raw),
    ed25519Public: raw,
    verifyKey: ed25519PublicKey(raw),
    curvePublic: z85Encode(curveRaw),
    curvePublicRaw: curveRaw,
    createdAt,
  };
}

export function identityFromSeed(
  name: string,
  seed: Uint8Array,
  createdAt = new Date().toISOString(),
): Identity {
  const signKey = ed25519PrivateKey(seed);
  const pub = publicIdentity(name, rawPublicKey(signKey), createdAt);
  const curveSecretRaw = x25519SecretFromSeed(seed);
  // Cross-check the birational map against node:crypto's own X25519 public key derivation.
  if (!x25519PublicFromSecret(curveSecretRaw).equals(pub.curvePublicRaw))
    throw new SecurityError("SECURITY", "internal error: derived CURVE key pair is inconsistent");
  return { ...pub, signKey, curveSecret: z85Encode(curveSecretRaw) };
}

/** Only the public half, e.g. to hand to a TrustStore in tests or to write a .pub file. */
export function toPublic(id: PublicIdentity): PublicIdentity {
  const { name, keyId, ed25519Public, verifyKey, curvePublic, curvePublicRaw, createdAt } = id;
  return { name, keyId, ed25519Public, verifyKey, curvePublic, curvePublicRaw, createdAt };
}

export function publicKeyText(id: PublicIdentity): string {
  const obj = {
    format: PUBLIC_FORMAT,
    name: id.name,
    keyId: id.keyId,
    createdAt: id.createdAt,
    ed25519Public: id.ed25519Public.toString("base64"),
    curvePublic: id.curvePublic,
  };
  return `${JSON.stringify(obj, null, 2)}\n`;
}

function secretKeyText(id: Identity, seed: Uint8Array): string {
  const obj = {
    format: SECRET_FORMAT,
    name: id.name,
    keyId: id.keyId,
    createdAt: id.createdAt,
    ed25519Seed: Buffer.from(seed).toString("base64"),
    ed25519Public: id.ed25519Public.toString("base64"),
    curvePublic: id.curvePublic,
  };
  return `${JSON.stringify(obj, null, 2)}\n`;
}

/** Write via a temp file and rename, so a crash never leaves half a key behind. */
export function writeFileAtomic(file: string, text: string, mode: number): void {
  const tmp = join(
    dirname(file),
    `.${basename(file)}.${process.pid}.${nodeCrypto().randomBytes(4).toString("hex")}.tmp`,
  );
  const fd = openSync(tmp, "wx", mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, mode); // the umask may have narrowed it
  renameSync(tmp, file);
}

export interface GenerateOptions {
  overwrite?: boolean;
  /** For tests and vectors; a fresh random seed otherwise. */
  seed?: Uint8Array;
  createdAt?: string;
}

/** Create `<keysDir>/<name>.key` (0600) and `<keysDir>/<name>.pub` (0644). */
export function generateIdentity(name: string, keysDir: string, opts: GenerateOptions = {}): Identity {
  assertName(name);
  const keyFile = join(keysDir, `${name}.key`);
  if (!opts.overwrite && existsSync(keyFile))
    throw new SecurityError(
      "SECURITY",
      `${keyFile} already exists: refusing to overwrite an identity (remove it first, or rotate with a new name)`,
      { details: { file: keyFile } },
    );
  mkdirSync(keysDir, { recursive: true, mode: 0o700 });
  const seed = opts.seed ?? nodeCrypto().randomBytes(32);
  const id = identityFromSeed(name, seed, opts.createdAt);
  writeFileAtomic(keyFile, secretKeyText(id, seed), 0o600);
  writeFileAtomic(join(keysDir, `${name}.pub`), publicKeyText(id), 0o644);
  return id;
}

export type ParsedKeyFile =
  | { kind: "secret"; identity: Identity }
  | { kind: "public"; identity: PublicIdentity };

/** Parse a .key or .pub file. Throws only SecurityError (a HeraldError), naming the file and the fix. */
export function parseKeyFile(text: string, source: string): ParsedKeyFile {
  const fail = (problem: string, cause?: unknown): SecurityError =>
    new SecurityError(
      "SECURITY",
      `${source}: ${problem}; fix: regenerate it with 'herald keys generate' or copy the .pub file again`,
      { cause, details: { file: source } },
    );
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw fail("not a herald key file (not JSON)", err);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw fail("not a herald key file");
  const obj = raw as Record<string, unknown>;
  const str = (key: string): string => {
    const v = obj[key];
    if (typeof v !== "string") throw fail(`field '${key}' must be a string`);
    return v;
  };
  const format = str("format");
  if (format !== SECRET_FORMAT && format !== PUBLIC_FORMAT)
    throw fail(`unknown format ${JSON.stringify(format)} (expected ${SECRET_FORMAT} or ${PUBLIC_FORMAT})`);
  const name = str("name");
  const problem = nameProblem(name);
  if (problem) throw fail(problem);
  const createdAt = str("createdAt");
  if (Number.isNaN(Date.parse(createdAt))) throw fail("field 'createdAt' must be an ISO 8601 time");
  const edPublic = strictBase64(str("ed25519Public"), 32);
  if (!edPublic) throw fail("field 'ed25519Public' must be 32 bytes of base64");
  try {
    let id: PublicIdentity;
    let kind: ParsedKeyFile["kind"];
    if (format === SECRET_FORMAT) {
      const seed = strictBase64(str("ed25519Seed"), 32);
      if (!seed) throw fail("field 'ed25519Seed' must be 32 bytes of base64");
      id = identityFromSeed(name, seed, createdAt);
      if (!id.ed25519Public.equals(edPublic)) throw fail("ed25519Public does not belong to ed25519Seed");
      kind = "secret";
    } else {
      id = publicIdentity(name, edPublic, createdAt);
      kind = "public";
    }
    if (obj["curvePublic"] !== undefined && obj["curvePublic"] !== id.curvePublic)
      throw fail("curvePublic does not belong to ed25519Public");
    if (obj["keyId"] !== undefined && obj["keyId"] !== id.keyId)
      throw fail(`keyId does not match the key (expected ${id.keyId})`);
    return kind === "secret" ? { kind, identity: id as Identity } : { kind, identity: id };
  } catch (err) {
    if (err instanceof HeraldError) throw err.message.startsWith(source) ? err : fail(err.message, err);
    throw fail(`unreadable key (${(err as Error).message})`, err);
  }
}

function strictBase64(text: string, bytes: number): Buffer | undefined {
  const buf = Buffer.from(text, "base64");
  return buf.length === bytes && buf.toString("base64") === text ? buf : undefined;
}

function keyFilePath(nameOrPath: string, dir: string | undefined, ext: ".key" | ".pub"): string {
  if (nameOrPath.includes("/") || nameOrPath.endsWith(ext)) return nameOrPath;
  if (dir === undefined)
    throw new SecurityError(
      "SECURITY",
      `cannot find identity '${nameOrPath}': give a keys directory or a path`,
    );
  return join(dir, `${nameOrPath}${ext}`);
}

/**
 * Load our own identity from `<keysDir>/<name>.key` (or a path). Refuses, like ssh, a secret key file that
 * group or others can read, and (see assertOwnKeyFile) one another account owns or could swap.
 */
export function loadIdentity(nameOrPath: string, keysDir?: string): Identity {
  const file = keyFilePath(nameOrPath, keysDir, ".key");
  const text = readKeyText(file);
  assertOwnKeyFile(file);
  const parsed = parseKeyFile(text, file);
  if (parsed.kind !== "secret")
    throw new SecurityError("SECURITY", `${file} is a public key file: load the matching .key file instead`, {
      details: { file },
    });
  return parsed.identity;
}

/**
 * A secret key is an identity only if nobody else chose it or can swap it:
 * - mode: not readable by group or others (they would hold the key);
 * - owner: this user. The owner of a file can rewrite it, so a key another account owns is one that
 *   account chose and knows. Root gets no exception: a broker run as root must not sign as whatever a
 *   service account put in its keys dir (run it as that account, or chown the key);
 * - directory (the one named and, through a symlink, the one holding the file): owned by this user or
 *   root, and not writable by group or others, who could otherwise rename another key of ours, or a link,
 *   into its place. A sticky directory (/tmp) is safe: there only the owner may rename or remove a file.
 * Owner and directory go unchecked where the platform has no uids (Windows).
 */
function assertOwnKeyFile(file: string): void {
  const st = statSync(file);
  const mode = st.mode & 0o777;
  if ((mode & 0o077) !== 0)
    throw new SecurityError(
      "SECURITY",
      `secret key file ${file} is readable by group or others (mode ${mode.toString(8)}): run 'chmod 600 ${file}'`,
      { details: { file, mode } },
    );
  const uid = process.getuid?.();
  if (uid === undefined) return;
  if (st.uid !== uid)
    throw new SecurityError(
      "SECURITY",
      `secret key file ${file} is owned by uid ${st.uid}, not by this user (uid ${uid}): its owner chose the key and can replace it; if it is yours, run 'chown ${uid} ${file}', else generate a key of your own ('herald keys generate')`,
      { details: { file, owner: st.uid, uid } },
    );
  for (const dir of new Set([dirname(file), dirname(realpathSync(file))])) assertSafeKeyDir(dir, file, uid);
}

function assertSafeKeyDir(dir: string, file: string, uid: number): void {
  const st = statSync(dir);
  const mode = st.mode & 0o7777;
  if (st.uid !== uid && st.uid !== 0)
    throw new SecurityError(
      "SECURITY",
      `keys directory ${dir} (of ${file}) is owned by uid ${st.uid}, neither this user (uid ${uid}) nor root: its owner can replace the key; run 'chown ${uid} ${dir}'`,
      { details: { dir, file, owner: st.uid, uid } },
    );
  if ((mode & 0o022) !== 0 && (mode & 0o1000) === 0)
    throw new SecurityError(
      "SECURITY",
      `keys directory ${dir} (of ${file}) is writable by group or others (mode ${mode.toString(8)}): they could put another key in its place; run 'chmod go-w ${dir}' ('herald keys generate' creates it 0700)`,
      { details: { dir, file, mode } },
    );
}

/** Load a .pub file (or the public half of a .key file). */
export function loadPublicKey(file: string): PublicIdentity {
  const parsed = parseKeyFile(readKeyText(file), file);
  return toPublic(parsed.identity);
}

function readKeyText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SecurityError(
      "SECURITY",
      code === "ENOENT"
        ? `key file ${file} does not exist: create it with 'herald keys generate'`
        : `cannot read key file ${file} (${code ?? (err as Error).message}): check its owner and permissions`,
      { cause: err, details: { file } },
    );
  }
}
