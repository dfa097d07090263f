import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { HeraldClient } from "../src/client/publisher.js";
import { Subscriber } from "../src/client/subscriber.js";
import { loadConfig } from "../src/config/load.js";
import { generateIdentity } from "../src/security/keys.js";
import { TrustStore, trustKey } from "../src/security/trust.js";
import { shimIdentity } from "../src/shim/setup.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { createLogger } from "../src/util/log.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";
import { endpointsOn, legacyPublisher, type ShimSetup, startShimBroker } from "./shim-helpers.js";

let setup: ShimSetup | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await setup?.stop();
  setup = undefined;
});

describe("shim ingest with signatures required (the legacy boundary)", () => {
  it("signs what it ingests with its own identity: accepted by the broker, verified at subscribers as vouched", async () => {
    const keys = mkdtempSync(join(tmpdir(), "herald-shimkeys-"));
    cleanups.push(() => rmSync(keys, { recursive: true, force: true }));
    const keysDir = join(keys, "keys");
    const trustDir = join(keys, "trust");
    const shim = generateIdentity("shim", keysDir);
    trustKey(shim, trustDir);
    const [p1] = await freePorts(1);
    setup = await startShimBroker({
      services: { "bodhi.test": { stage: "legacy", endpoints: endpointsOn([p1!]) } },
      security: {
        keysDir,
        trustDir,
        identity: "shim",
        requireSignatures: true,
        strictTopics: true,
        policy: { shim: ["org.example.#", "probe.#"] },
      },
    });
    const trust = new TrustStore(trustDir);
    trust.reload();
    const sub = new Subscriber({
      sources: [
        new ZmqSubscribeTransport({
          name: "h",
          endpoints: [`tcp://127.0.0.1:${setup.ports.herald}`],
          format: "herald",
        }),
      ],
      verify: { trust },
    });
    cleanups.push(() => sub.close());
    const got: Array<{ id: string; signer?: string; vouched?: string }> = [];
    void (async () => {
      for await (const m of sub) got.push({ id: m.message.id, signer: m.signer, vouched: m.vouched });
    })();
    // Unsigned submissions are refused; a signed probe links the subscriber up.
    const plain = new HeraldClient({ endpoint: setup.client.endpoint, retries: 0 });
    cleanups.push(() => plain.close());
    await expect(plain.publish("probe.plain", {})).rejects.toMatchObject({ code: "UNSIGNED" });
    const signer = new HeraldClient({ endpoint: setup.client.endpoint, sign: shim });
    cleanups.push(() => signer.close());
    for (let i = 0; i < 200; i++) {
      const ack = await signer.publish("probe.link", { i });
      if (await waitFor(() => got.some((g) => g.id === ack.id), 100)) break;
    }
    const pub = legacyPublisher({
      bind: [`tcp://127.0.0.1:${p1}`],
      count: 20,
      topic: "org.example.dev.bodhi.update.comment",
    });
    cleanups.push(() => pub.stop());
    expect(await waitFor(() => got.filter((g) => g.vouched === "legacy").length >= 20, 30_000)).toBe(true);
    const legacy = got.filter((g) => g.vouched === "legacy");
    expect(new Set(legacy.map((g) => g.signer))).toEqual(new Set(["shim"]));
    expect(sub.stats().rejected ?? {}).toEqual({});
    expect(setup.running.broker.status().submit.admissionByCode).toMatchObject({ UNSIGNED: 1 });
  });

  it("ingests in-process: a broker whose only submit socket is TCP with CURVE needs no client keys for its shim", async () => {
    const keys = mkdtempSync(join(tmpdir(), "herald-shimkeys-"));
    cleanups.push(() => rmSync(keys, { recursive: true, force: true }));
    const keysDir = join(keys, "keys");
    const trustDir = join(keys, "trust");
    trustKey(generateIdentity("broker", keysDir), trustDir);
    const [p1, submit] = await freePorts(2);
    setup = await startShimBroker({
      services: { "bodhi.test": { stage: "legacy", endpoints: endpointsOn([p1!]) } },
      submit: { ipc: false, tcp: [`tcp://127.0.0.1:${submit}`] },
      security: { keysDir, trustDir, identity: "broker", curve: true },
    });
    // A client without CURVE keys gets nowhere on that socket (the shim's client had none either).
    const outsider = new HeraldClient({ endpoint: `tcp://127.0.0.1:${submit}`, timeoutMs: 300, retries: 0 });
    cleanups.push(() => outsider.close());
    await expect(outsider.publish("org.example.dev.x.y", {})).rejects.toMatchObject({ retryable: true });

    const pub = legacyPublisher({
      bind: [`tcp://127.0.0.1:${p1}`],
      count: 20,
      topic: "org.example.dev.bodhi.update.comment",
    });
    cleanups.push(() => pub.stop());
    const s = setup;
    const ingest = () => s.running.shim!.status().services["bodhi.test"]?.ingest;
    expect(await waitFor(() => (ingest()?.ingested ?? 0) >= 20, 30_000)).toBe(true);
    expect(ingest()).toMatchObject({ ingested: 20, rejected: 0, dropped: 0 });
    expect(s.running.broker.status().outbox.headSeq).toBe(20);
  });
});

describe("the shim's identity with signatures required", () => {
  it("warns at start when it has no key to sign with: the broker would refuse everything it ingests", () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-shim-id-"));
    try {
      const lines: string[] = [];
      const log = createLogger({ level: "warn", format: "json", write: (l) => lines.push(l) });
      const env = { HERALD_SECURITY__REQUIRE_SIGNATURES: "true", HERALD_SECURITY__KEYS_DIR: dir };
      const none = loadConfig({ systemPath: join(dir, "none.yaml"), cwd: dir, env }).config;
      expect(shimIdentity(none, log)).toEqual({});
      const typo = loadConfig({
        systemPath: join(dir, "none.yaml"),
        cwd: dir,
        env: { ...env, HERALD_SECURITY__IDENTITY: "shimm" },
      }).config;
      expect(shimIdentity(typo, log)).toEqual({});
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/requireSignatures is on but the shim has no key .*refuses every ingested/);
      expect(JSON.parse(lines[1]!)).toMatchObject({ identity: "shimm", key: join(dir, "shimm.key") });
      // Not required: unsigned is fine, nothing to say.
      const off = loadConfig({
        systemPath: join(dir, "none.yaml"),
        cwd: dir,
        env: { HERALD_SECURITY__KEYS_DIR: dir },
      }).config;
      expect(shimIdentity(off, log)).toEqual({});
      expect(lines).toHaveLength(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
