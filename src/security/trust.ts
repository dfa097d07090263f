import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, type Stats, statSync } from "node:fs";
import { basename, join } from "node:path";
import { HeraldError, SecurityError } from "../errors.js";
import {
  type Identity,
  loadPublicKey,
  nameProblem,
  type PublicIdentity,
  parseKeyFile,
  publicKeyText,
  toPublic,
  writeFileAtomic,
} from "./keys.js";

/** Minimal logger shape (compatible with src/util/log.ts). */
export interface SecurityLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export const consoleLogger: SecurityLogger = {
  info: (m, f) => console.info(`herald security: ${m}`, f ?? ""),
  warn: (m, f) => console.warn(`herald security: ${m}`, f ?? ""),
};

export interface TrustedKey extends PublicIdentity {
  file: string;
  revoked: boolean;
}

export interface TrustStoreOptions {
  /** Poll interval in ms for `start()`; default 5000. */
  reloadInterval?: number;
  logger?: SecurityLogger;
  /** Called after a reload that changed anything. */
  onChange?: (change: TrustChange) => void;
}

export interface TrustChange {
  added: string[];
  removed: string[];
  revoked: string[];
  errors: string[];
}

export const DEFAULT_RELOAD_INTERVAL = 5000;

interface Entry {
  sig: string;
  key: TrustedKey | undefined;
  error: string | undefined;
}

/**
 * The trusted public keys: `<trustDir>/*.pub` (trusted) and `<trustDir>/revoked/*.pub` (revoked, still
 * known so verification can say REVOKED_KEY). Polled by listing and stat (mtime, size, inode), which
 * works on every filesystem and catches edits fs.watch misses. A file that fails to parse trusts
 * nobody (fail closed) and is reported on each change.
 */
export class TrustStore {
  readonly dir: string;
  private readonly opts: TrustStoreOptions;
  private entries = new Map<string, Entry>();
  private byId = new Map<string, TrustedKey>();
  private byCurve = new Map<string, TrustedKey>();
  private timer: NodeJS.Timeout | undefined;
  private readonly statics: PublicIdentity[] = [];
  private writable: string[] = [];

  constructor(trustDir: string, opts: TrustStoreOptions = {}) {
    this.dir = trustDir;
    this.opts = opts;
  }

  /** Load now (a missing directory is an empty store). Returns what changed since the last load. */
  reload(): TrustChange {
    const seen = new Map<string, Entry>();
    const change: TrustChange = { added: [], removed: [], revoked: [], errors: [] };
    const stats: Array<[string, Stats]> = [];
    for (const [file, revoked] of this.listFiles()) {
      const st = safeStat(file);
      if (!st) continue;
      stats.push([file, st]);
      const sig = `${st.mtimeMs}:${st.size}:${st.ino}:${st.ctimeMs}`;
      const old = this.entries.get(file);
      const entry = old && old.sig === sig ? old : readEntry(file, sig, revoked);
      seen.set(file, entry);
      if (entry === old) continue;
      if (entry.error) change.errors.push(entry.error);
      else if (entry.key) (revoked ? change.revoked : change.added).push(entry.key.keyId);
    }
    for (const [file, old] of this.entries)
      if (!seen.has(file) && old.key && !old.key.revoked) change.removed.push(old.key.keyId);
    this.entries = seen;
    this.rebuildIndex();
    const changed =
      change.added.length + change.removed.length + change.revoked.length + change.errors.length;
    this.warnWritable(stats, changed > 0);
    if (changed > 0) {
      for (const e of change.errors) this.opts.logger?.warn(`ignoring trust file: ${e}`);
      this.opts.logger?.info("trust store reloaded", { ...change, dir: this.dir });
      this.opts.onChange?.(change);
    }
    return change;
  }

  /** Reload every `reloadInterval` ms (unref'd timer: it never keeps the process alive). */
  start(): this {
    this.reload();
    if (!this.timer) {
      const ms = this.opts.reloadInterval ?? DEFAULT_RELOAD_INTERVAL;
      this.timer = setInterval(() => {
        try {
          this.reload();
        } catch (err) {
          this.opts.logger?.warn("trust store reload failed; keeping the previous keys", {
            error: (err as Error).message,
          });
        }
      }, ms);
      this.timer.unref();
    }
    return this;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Trust a key without a file (e.g. our own identity, so messages we vouch for verify locally). */
  addStatic(id: PublicIdentity): void {
    this.statics.push(toPublic(id));
    this.rebuildIndex();
  }

  byKeyId(keyId: string): TrustedKey | undefined {
    return this.byId.get(keyId);
  }

  /** Look up by raw 32-byte CURVE public key (what ZAP hands us). */
  byCurveKey(raw: Uint8Array): TrustedKey | undefined {
    return this.byCurve.get(Buffer.from(raw).toString("hex"));
  }

  /** Current (non-revoked) keys of an identity name. */
  byName(name: string): TrustedKey[] {
    return this.keys().filter((k) => k.name === name && !k.revoked);
  }

  keys(): TrustedKey[] {
    return [...this.byId.values()];
  }

  problems(): string[] {
    return [...this.entries.values()].flatMap((e) => (e.error ? [e.error] : []));
  }

  /** Trust files and directories anyone may write (as of the last reload), each with its fix. */
  permissionWarnings(): string[] {
    return [...this.writable];
  }

  /**
   * Anyone who can write to the trust dir or a .pub in it can make their own key trusted: warn, naming the
   * path and the chmod. Not every poll (every 5 s, forever): a path is warned about when first seen so,
   * and again with every reload that changes the trusted keys, when someone is looking. Group-writable is
   * left alone: a dedicated admin group may be meant to add keys.
   */
  private warnWritable(files: Array<[string, Stats]>, changed: boolean): void {
    const paths: Array<[string, Stats | undefined]> = [
      [this.dir, safeStat(this.dir, true)],
      [join(this.dir, "revoked"), safeStat(join(this.dir, "revoked"), true)],
      ...files,
    ];
    const now = paths.flatMap(([path, st]) =>
      st && (st.mode & 0o002) !== 0 ? [writableWarning(path, st)] : [],
    );
    const seen = new Set(this.writable);
    for (const w of now) if (changed || !seen.has(w)) this.opts.logger?.warn(w);
    this.writable = now;
  }

  private listFiles(): Array<[string, boolean]> {
    const out: Array<[string, boolean]> = [];
    for (const [dir, revoked] of [
      [this.dir, false],
      [join(this.dir, "revoked"), true],
    ] as const) {
      for (const f of safeList(dir))
        if (f.endsWith(".pub") && !f.startsWith(".")) out.push([join(dir, f), revoked]);
    }
    return out;
  }

  /**
   * Revoked wins: a key listed in both places is revoked. Revocation is of the public key, whatever the
   * name: a key id is name + key hash, and the name comes from the .pub file's contents, so the same
   * revoked key under another name (a copy with the name field edited) is revoked too.
   */
  private rebuildIndex(): void {
    const keys = [...this.entries.values()].flatMap((e) => (e.key ? [e.key] : []));
    const revokedKeys = new Set(keys.filter((k) => k.revoked).map((k) => k.ed25519Public.toString("hex")));
    const mark = (k: TrustedKey): TrustedKey =>
      !k.revoked && revokedKeys.has(k.ed25519Public.toString("hex")) ? { ...k, revoked: true } : k;
    const byId = new Map<string, TrustedKey>();
    for (const s of this.statics) byId.set(s.keyId, mark({ ...s, file: "(static)", revoked: false }));
    for (const k of keys) if (!k.revoked && !byId.has(k.keyId)) byId.set(k.keyId, mark(k));
    for (const k of keys) if (k.revoked) byId.set(k.keyId, k);
    const byCurve = new Map<string, TrustedKey>();
    for (const k of byId.values()) byCurve.set(k.curvePublicRaw.toString("hex"), k);
    this.byId = byId;
    this.byCurve = byCurve;
  }
}

function writableWarning(path: string, st: Stats): string {
  const what = st.isDirectory() ? "trust directory" : "trusted key file";
  return `${what} ${path} is writable by everyone (mode ${(st.mode & 0o7777).toString(8)}): anyone on this host can make their key trusted; run 'chmod o-w ${path}'`;
}

function readEntry(file: string, sig: string, revoked: boolean): Entry {
  try {
    const parsed = parseKeyFile(readFileSync(file, "utf8"), file);
    if (parsed.kind === "secret")
      return {
        sig,
        key: undefined,
        error: `${file} holds a SECRET key: put only .pub files in the trust dir`,
      };
    return { sig, key: { ...parsed.identity, file, revoked }, error: undefined };
  } catch (err) {
    return { sig, key: undefined, error: err instanceof Error ? err.message : String(err) };
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function safeStat(file: string, dir = false): Stats | undefined {
  try {
    const st = statSync(file);
    return (dir ? st.isDirectory() : st.isFile()) ? st : undefined;
  } catch {
    return undefined; // raced with a rename: picked up on the next poll
  }
}

/**
 * Copy a public key (a .pub file path or an identity) into the trust dir as `<name>.pub`. The name comes
 * from the key's own contents, so replacing another key already trusted under it (a rotation, or a .pub
 * that only claims the name) needs `force`.
 */
export function trustKey(
  source: string | PublicIdentity,
  trustDir: string,
  opts: { force?: boolean } = {},
): string {
  const id = typeof source === "string" ? loadPublicKey(source) : source;
  // Revoked wins over trusted (TrustStore): copying it back would print "trusted" and change nothing.
  const revoked = revokedFileOf(id, trustDir);
  if (revoked !== undefined) {
    const as = revoked.keyId === id.keyId ? "" : ` as ${revoked.keyId}`;
    throw new SecurityError(
      "REVOKED_KEY",
      `key ${id.keyId} is revoked (${revoked.file}${as}) and stays refused, under any name, while that file exists: give ${id.name} a new key pair ('herald keys generate'), or delete ${revoked.file} if the revocation was a mistake`,
      { details: { keyId: id.keyId, file: revoked.file, revokedKeyId: revoked.keyId } },
    );
  }
  mkdirSync(trustDir, { recursive: true, mode: 0o750 });
  const file = join(trustDir, `${id.name}.pub`);
  const current = trustedIn(file);
  if (current !== undefined && current.keyId !== id.keyId && !opts.force)
    throw new SecurityError(
      "SECURITY",
      `${file} already trusts ${current.keyId}; refusing to replace it with ${id.keyId} (the name comes from the .pub file's contents): check where that file came from, and to rotate ${id.name}'s key run 'herald keys trust --force' (${current.keyId} then fails with UNKNOWN_KEY)`,
      { details: { file, keyId: id.keyId, trustedKeyId: current.keyId } },
    );
  writeFileAtomic(file, publicKeyText(id), 0o644);
  return file;
}

/** The key a trust file holds; undefined when there is none (or it is unreadable, so trusts nobody). */
function trustedIn(file: string): PublicIdentity | undefined {
  if (!existsSync(file)) return undefined;
  try {
    return loadPublicKey(file);
  } catch {
    return undefined;
  }
}

/** The file in `<trustDir>/revoked/` holding this public key under any name (unreadable files skipped). */
function revokedFileOf(id: PublicIdentity, trustDir: string): { file: string; keyId: string } | undefined {
  const dir = join(trustDir, "revoked");
  if (!existsSync(dir)) return undefined;
  for (const f of readdirSync(dir)) {
    if (!f.endsWith(".pub")) continue;
    try {
      const key = loadPublicKey(join(dir, f));
      if (key.ed25519Public.equals(id.ed25519Public)) return { file: join(dir, f), keyId: key.keyId };
    } catch {
      // listKeys reports unreadable files; here only an exact match matters
    }
  }
  return undefined;
}

/**
 * Revoke `<trustDir>/<name>.pub` by moving it to `<trustDir>/revoked/`. Also accepts a key id, to revoke
 * one specific key. Returns the new path. Takes effect at the next reload of every TrustStore on it.
 */
export function revokeKey(nameOrKeyId: string, trustDir: string): string {
  const revokedDir = join(trustDir, "revoked");
  mkdirSync(revokedDir, { recursive: true, mode: 0o750 });
  const file = findTrustFile(nameOrKeyId, trustDir);
  // The name from the file itself: trustDir may be given as ./trust or trust/ (join normalizes the path).
  const base = basename(file);
  let target = join(revokedDir, base);
  if (existsSync(target)) {
    // An older revoked key of the same name: keep both.
    const key = loadPublicKey(file);
    target = join(revokedDir, `${base.slice(0, -4)}.${key.keyId.split(":").pop()}.pub`);
  }
  renameSync(file, target);
  return target;
}

function findTrustFile(nameOrKeyId: string, trustDir: string): string {
  const direct = join(trustDir, `${nameOrKeyId}.pub`);
  if (!nameProblem(nameOrKeyId) && existsSync(direct)) return direct;
  for (const f of safeList(trustDir)) {
    if (!f.endsWith(".pub")) continue;
    try {
      const key = loadPublicKey(join(trustDir, f));
      if (key.keyId === nameOrKeyId || key.name === nameOrKeyId) return join(trustDir, f);
    } catch (err) {
      if (!(err instanceof HeraldError)) throw err;
    }
  }
  throw new SecurityError(
    "SECURITY",
    `no trusted key '${nameOrKeyId}' in ${trustDir}: see 'herald keys list' for names and key ids`,
  );
}

export interface KeyListing {
  name: string;
  keyId: string;
  /** own = a secret key in keysDir; trusted / revoked = a .pub in trustDir. */
  kind: "own" | "trusted" | "revoked";
  file: string;
  createdAt: string;
  curvePublic: string;
}

/**
 * Everything `herald keys list` shows; unreadable files are listed under `problems`, trust files anyone
 * may write under `warnings`.
 */
export function listKeys(
  keysDir: string,
  trustDir: string,
): { keys: KeyListing[]; problems: string[]; warnings: string[] } {
  const keys: KeyListing[] = [];
  const problems: string[] = [];
  for (const f of safeList(keysDir).filter((f) => f.endsWith(".key"))) {
    const file = join(keysDir, f);
    try {
      const { identity } = parseKeyFile(readFileSync(file, "utf8"), file);
      keys.push(listing(identity, "own", file));
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  const store = new TrustStore(trustDir);
  store.reload();
  for (const k of store.keys()) keys.push(listing(k, k.revoked ? "revoked" : "trusted", k.file));
  problems.push(...store.problems());
  return { keys, problems, warnings: store.permissionWarnings() };
}

function listing(id: PublicIdentity | Identity, kind: KeyListing["kind"], file: string): KeyListing {
  return { name: id.name, keyId: id.keyId, kind, file, createdAt: id.createdAt, curvePublic: id.curvePublic };
}
