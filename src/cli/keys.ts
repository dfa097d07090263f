import { join } from "node:path";
import { generateIdentity, loadPublicKey, type PublicIdentity } from "../security/keys.js";
import { listKeys, revokeKey, trustKey } from "../security/trust.js";
import { EXIT, noMore, out, parse, UsageError } from "./args.js";
import { context } from "./context.js";

const USAGE = `usage: herald keys generate NAME [--keys-dir D]
       herald keys list [--keys-dir D] [--trust-dir D] [--json]
       herald keys trust FILE.pub [--force] [--trust-dir D]
       herald keys revoke NAME|KEY-ID [--trust-dir D]
       herald keys show NAME|FILE [--keys-dir D] [--json]

Identities for CURVE and message signatures (docs/security.md). Directories default to security.keysDir
and security.trustDir from the configuration.
  generate  write NAME.key (0600) and NAME.pub in the keys dir; prints the .pub path and the key id
  list      our own key pairs, trusted and revoked keys (and unreadable files)
  trust     copy a .pub into the trust dir as <its name>.pub (takes effect within security.reloadInterval,
            no restart); replacing another key trusted under that name needs --force; a revoked key is
            refused under any name
  revoke    move a trusted key to <trust dir>/revoked/ (messages signed with it fail with REVOKED_KEY)
  show      the public key, CURVE key (Z85, for sinks[].serverKey / security.serverKey) and key id`;

export async function keys(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      "keys-dir": { type: "string" },
      "trust-dir": { type: "string" },
      json: { type: "boolean" },
      force: { type: "boolean" },
    },
    USAGE,
  );
  const [sub, arg, ...extra] = positionals;
  if (values.help || sub === undefined) {
    out(USAGE);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}\n\n${USAGE}`);
  // Ignored elsewhere it would suggest, e.g., that generate overwrites an identity: it never does.
  if (values.force && sub !== "trust")
    throw new UsageError(`--force applies to 'herald keys trust' only\n\n${USAGE}`);
  // Config only for the directories: explicit flags need none (and still work without a config file).
  const dirs = (): { keysDir: string; trustDir: string } => {
    const cfg =
      values["keys-dir"] && values["trust-dir"] ? undefined : context(values.config).config.security;
    return {
      keysDir: values["keys-dir"] ?? cfg!.keysDir,
      trustDir: values["trust-dir"] ?? cfg!.trustDir,
    };
  };
  const need = (what: string): string => {
    if (arg === undefined) throw new UsageError(`herald keys ${sub} needs ${what}\n\n${USAGE}`);
    return arg;
  };
  switch (sub) {
    case "generate": {
      const { keysDir } = dirs();
      const id = generateIdentity(need("a NAME"), keysDir);
      out(join(keysDir, `${id.name}.pub`));
      out(id.keyId);
      return EXIT.ok;
    }
    case "list":
      noMore(arg === undefined ? [] : [arg], USAGE);
      return list(dirs(), values.json ?? false);
    case "trust": {
      const file = trustKey(need("a .pub file"), dirs().trustDir, { force: values.force ?? false });
      out(`trusted ${loadPublicKey(file).keyId}: ${file}`);
      return EXIT.ok;
    }
    case "revoke": {
      const moved = revokeKey(need("a NAME or key id"), dirs().trustDir);
      out(`revoked: ${moved}`);
      return EXIT.ok;
    }
    case "show":
      return show(need("a NAME or file"), dirs().keysDir, values.json ?? false);
    default:
      throw new UsageError(`unknown keys command '${sub}'\n\n${USAGE}`);
  }
}

function list(dirs: { keysDir: string; trustDir: string }, json: boolean): number {
  const { keys, problems, warnings } = listKeys(dirs.keysDir, dirs.trustDir);
  if (json) {
    out(JSON.stringify({ ...dirs, keys, problems, warnings }));
    return problems.length > 0 ? EXIT.failed : EXIT.ok;
  }
  if (keys.length === 0) out(`no keys in ${dirs.keysDir} or ${dirs.trustDir}`);
  for (const k of keys) out(`${k.kind.padEnd(8)} ${k.keyId.padEnd(40)} ${k.curvePublic} ${k.file}`);
  for (const p of problems) process.stderr.write(`herald keys: ${p}\n`);
  // Warnings do not fail the listing: the keys are what they are, the directory needs a chmod.
  for (const w of warnings) process.stderr.write(`herald keys: warning: ${w}\n`);
  return problems.length > 0 ? EXIT.failed : EXIT.ok;
}

function show(nameOrFile: string, keysDir: string, json: boolean): number {
  const file =
    nameOrFile.includes("/") || nameOrFile.endsWith(".pub") || nameOrFile.endsWith(".key")
      ? nameOrFile
      : join(keysDir, `${nameOrFile}.pub`);
  const id: PublicIdentity = loadPublicKey(file);
  const info = {
    name: id.name,
    keyId: id.keyId,
    ed25519Public: id.ed25519Public.toString("base64"),
    curvePublic: id.curvePublic,
    createdAt: id.createdAt,
    file,
  };
  if (json) out(JSON.stringify(info));
  else for (const [k, v] of Object.entries(info)) out(`${k.padEnd(14)} ${v}`);
  return EXIT.ok;
}
