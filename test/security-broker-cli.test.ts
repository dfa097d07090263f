import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { loadPublicKey } from "../src/security/index.js";
import { CLI, freePorts, type ServeProcess, serveEnv, startServe } from "./helpers/serve.js";

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "herald-seccli-"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

function herald(args: string[], env: NodeJS.ProcessEnv = { ...process.env, HERALD_CONFIG: "" }) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
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

describe("herald keys", () => {
  it("generate, show, list, trust, revoke: a round trip through the CLI", async () => {
    const keys = join(root, "keys");
    const trust = join(root, "trust");
    const dirs = ["--keys-dir", keys, "--trust-dir", trust];
    const gen = await herald(["keys", "generate", "bodhi.app01", "--keys-dir", keys]);
    expect(gen.code).toBe(0);
    const [pubFile, keyId] = gen.stdout.trim().split("\n");
    expect(pubFile).toBe(join(keys, "bodhi.app01.pub"));
    expect(keyId).toMatch(/^bodhi\.app01:[0-9a-f]{16}$/);
    expect(loadPublicKey(pubFile!).keyId).toBe(keyId);

    const again = await herald(["keys", "generate", "bodhi.app01", "--keys-dir", keys]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("refusing to overwrite");

    const show = await herald(["keys", "show", "bodhi.app01", "--keys-dir", keys, "--json"]);
    expect(show.code).toBe(0);
    const info = JSON.parse(show.stdout) as { keyId: string; curvePublic: string };
    expect(info.keyId).toBe(keyId);
    expect(info.curvePublic).toMatch(/^.{40}$/);

    const trusted = await herald(["keys", "trust", pubFile!, "--trust-dir", trust]);
    expect(trusted.code).toBe(0);
    expect(existsSync(join(trust, "bodhi.app01.pub"))).toBe(true);

    const list1 = JSON.parse((await herald(["keys", "list", ...dirs, "--json"])).stdout) as {
      keys: Array<{ kind: string; keyId: string }>;
    };
    expect(list1.keys.map((k) => [k.kind, k.keyId]).sort()).toEqual([
      ["own", keyId],
      ["trusted", keyId],
    ]);

    const revoked = await herald(["keys", "revoke", "bodhi.app01", "--trust-dir", trust]);
    expect(revoked.code).toBe(0);
    expect(existsSync(join(trust, "revoked", "bodhi.app01.pub"))).toBe(true);
    const list2 = await herald(["keys", "list", ...dirs]);
    expect(list2.stdout).toMatch(/^revoked\s+bodhi\.app01:/m);
    expect(list2.stdout).not.toMatch(/^trusted/m);

    const bad = await herald(["keys", "revoke", "nobody", "--trust-dir", trust]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("herald keys list");
    expect((await herald(["keys", "frobnicate", ...dirs])).code).toBe(2);
  });

  it("uses security.keysDir / trustDir from the configuration by default", async () => {
    const dir = join(root, "cfg");
    const env = {
      ...process.env,
      HERALD_CONFIG: "",
      HERALD_SECURITY__KEYS_DIR: join(dir, "k"),
      HERALD_SECURITY__TRUST_DIR: join(dir, "t"),
    };
    expect((await herald(["keys", "generate", "me"], env)).code).toBe(0);
    expect(existsSync(join(dir, "k", "me.key"))).toBe(true);
    expect((await herald(["keys", "trust", join(dir, "k", "me.pub")], env)).code).toBe(0);
    expect(existsSync(join(dir, "t", "me.pub"))).toBe(true);
  });
});

describe("herald serve with security on", () => {
  let serve: ServeProcess | undefined;
  afterAll(() => {
    serve?.child.kill("SIGKILL");
  });

  it("refuses a secret key file others can read", async () => {
    const dir = join(root, "serve-bad");
    const [h, l] = await freePorts(2);
    const env = serveEnv(
      dir,
      { herald: h!, legacy: l! },
      { HERALD_SECURITY__IDENTITY: "broker", HERALD_SECURITY__CURVE: "true" },
    );
    const keysDir = join(dir, "data", "keys");
    expect((await herald(["keys", "generate", "broker", "--keys-dir", keysDir])).code).toBe(0);
    chmodSync(join(keysDir, "broker.key"), 0o644);
    const r = await herald(["serve"], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("chmod 600");
  });

  it("herald publish signs with security.identity; unsigned is refused; tail --verify prints the signer", async () => {
    const dir = join(root, "serve-ok");
    const [h, l] = await freePorts(2);
    const env = serveEnv(
      dir,
      { herald: h!, legacy: l! },
      {
        HERALD_SECURITY__IDENTITY: "me",
        HERALD_SECURITY__REQUIRE_SIGNATURES: "true",
        HERALD_SECURITY__RELOAD_INTERVAL: "100ms",
      },
    );
    const keysDir = join(dir, "data", "keys");
    expect((await herald(["keys", "generate", "me"], env)).code).toBe(0);
    expect((await herald(["keys", "trust", join(keysDir, "me.pub")], env)).code).toBe(0);
    serve = await startServe(env);
    const tail = spawn(process.execPath, [CLI, "tail", "org.#", "--verify", "--count", "1"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let tailOut = "";
    tail.stdout.on("data", (d: Buffer) => {
      tailOut += d.toString();
    });
    const tailExit = new Promise<number | null>((r) => tail.on("exit", r));
    // Unsigned (no identity for this user): refused by the broker with UNSIGNED.
    const anon = await herald(["publish", "org.x.anon", "{}"], { ...env, HERALD_SECURITY__IDENTITY: "null" });
    expect(anon.code).toBe(1);
    expect(anon.stderr).toContain("UNSIGNED");
    expect(anon.stderr).toMatch(/this client signs nothing: security\.identity is not set/);
    // A typo in the identity: the refusal says which key file is missing, not only "sign it".
    const typo = await herald(["publish", "org.x.typo", "{}"], { ...env, HERALD_SECURITY__IDENTITY: "mee" });
    expect(typo.code).toBe(1);
    expect(typo.stderr).toMatch(/UNSIGNED: .*\n {2}security\.identity is mee but .*mee\.key does not exist/);
    let printed = false;
    for (let i = 0; i < 100 && !printed; i++) {
      const pub = await herald(["publish", "org.x.signed", JSON.stringify({ i })], env);
      expect(pub.code, pub.stderr).toBe(0);
      printed = await Promise.race([
        tailExit.then(() => true),
        new Promise<boolean>((r) => setTimeout(() => r(false), 200)),
      ]);
    }
    expect(printed).toBe(true);
    expect(tailOut).toMatch(/org\.x\.signed .* signer=me /);
  });
});

describe("herald serve when its ZAP handler dies", () => {
  it("stops and exits 6 (security fail-stop) instead of serving CURVE sockets unguarded", async () => {
    const dir = join(root, "serve-zap-death");
    const [h, l, s] = await freePorts(3);
    const env = serveEnv(
      dir,
      { herald: h!, legacy: l! },
      {
        HERALD_SECURITY__IDENTITY: "broker",
        HERALD_SECURITY__CURVE: "true",
        HERALD_BROKER__SUBMIT__TCP: `["tcp://127.0.0.1:${s}"]`,
        HERALD_FAILPOINTS: "zap.request=error",
      },
    );
    expect((await herald(["keys", "generate", "broker"], env)).code).toBe(0);
    const show = await herald(["keys", "show", "broker", "--json"], env);
    const serverKey = (JSON.parse(show.stdout) as { curvePublic: string }).curvePublic;
    const served = await startServe(env);
    const pair = zmq.curveKeyPair();
    // Any CURVE handshake asks the ZAP handler; the failpoint makes that request kill it.
    const client = new zmq.Dealer({
      linger: 0,
      curveServerKey: serverKey,
      curvePublicKey: pair.publicKey,
      curveSecretKey: pair.secretKey,
    });
    let code: number | null | string;
    try {
      client.connect(`tcp://127.0.0.1:${s}`);
      code = await Promise.race([
        served.exited,
        new Promise<string>((r) => setTimeout(() => r("still running after 15 s"), 15_000)),
      ]);
    } finally {
      client.close();
      if (served.child.exitCode === null) served.child.kill("SIGKILL");
    }
    expect(code, served.stderr()).toBe(6);
    expect(served.stderr()).toMatch(/ZAP handler died/);
  }, 30_000);
});
