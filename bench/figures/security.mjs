// Figure group 9: the cost of signatures: Ed25519 sign and verify per message (ops/s), measured only once
// src/security/sign.ts exports signMessage/verifyMessage (built to dist/); and acknowledged publish throughput
// with CURVE and signatures on versus off, in the same run.
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { figure, notMeasured } from "../lib/figure.mjs";
import { freePorts, tempDir } from "../lib/procs.mjs";
import { newBrokerHome, startServe } from "../lib/serve.mjs";
import { DIST, latencyUs, median, medianOf, nowMs, repeat } from "../lib/util.mjs";

export async function run(ctx) {
  const signPath = `${DIST}/security/sign.js`;
  const keysPath = `${DIST}/security/keys.js`;
  if (!existsSync(signPath) || !existsSync(keysPath))
    return [
      notMeasured("security", "not measured yet: security integration pending (no dist/security/sign.js)"),
    ];
  const sign = await import(signPath);
  const keys = await import(keysPath);
  if (typeof sign.signMessage !== "function" || typeof sign.verifyMessage !== "function")
    return [
      notMeasured(
        "security",
        "not measured yet: security integration pending (no signMessage/verifyMessage)",
      ),
    ];
  const { createMessage } = await import(`${DIST}/wire/message.js`);
  const id = keys.identityFromSeed("bench", randomBytes(32));
  const trust = { byKeyId: (k) => (k === id.keyId ? { ...id, file: "bench", revoked: false } : undefined) };
  const n = ctx.n(20_000, 2000);
  const msgs = Array.from({ length: n }, (_, k) =>
    createMessage({ topic: "bench.sec", body: { k, text: "x".repeat(64) } }),
  );
  const signRates = [];
  const verifyRates = [];
  let bad = 0;
  await repeat(ctx.reps, () => {
    let t = nowMs();
    const signed = msgs.map((m) => sign.signMessage(m, id));
    signRates.push(n / ((nowMs() - t) / 1000));
    t = nowMs();
    for (const m of signed) if (!sign.verifyMessage(m, trust).ok) bad++;
    verifyRates.push(n / ((nowMs() - t) / 1000));
  });
  const note = `Ed25519 over the canonical envelope (node:crypto), one message at a time, ~200 B bodies${bad ? `; ${bad} verifications FAILED` : ""}`;
  const plain = await repeat(ctx.reps, () => throughput(ctx, false));
  const secure = await repeat(ctx.reps, () => throughput(ctx, true));
  return [
    figure({ figure: "security.sign", values: signRates, unit: "ops/s", note }),
    figure({ figure: "security.verify", values: verifyRates, unit: "ops/s" }),
    figure({
      figure: "security.curve_signed_vs_plain",
      values: secure.map((r) => r.rate),
      unit: "msg/s",
      reference: {
        name: "same broker and client, plain TCP, unsigned",
        value: median(plain.map((r) => r.rate)),
      },
      p50_us: medianOf(secure, "p50_us"),
      p99_us: medianOf(secure, "p99_us"),
      note: `acknowledged publishes over TCP, ${WINDOW} concurrent publish() calls from a client in the runner's own process (the client merges those made in the same tick into shared requests, on both sides alike); secure = CURVE submit socket + ZAP + every message signed by the client and verified by the broker (requireSignatures)`,
    }),
  ];
}

const WINDOW = 32;

/**
 * Acknowledged publish rate over TCP with CURVE + signatures, or plain. The client runs in the runner's own
 * process (the broker is a child), WINDOW concurrent publishes: the client's coalescing merges them into
 * shared requests on both sides alike.
 */
async function throughput(ctx, secure) {
  const [port] = await freePorts(1);
  const endpoint = `tcp://127.0.0.1:${port}`;
  // Removed in `finally`, and at exit if anything below throws first (a broker that does not start).
  const keys = tempDir("herald-bench-keys-");
  let broker;
  let client;
  try {
    const { generateIdentity } = await import(`${DIST}/security/keys.js`);
    const { trustKey } = await import(`${DIST}/security/trust.js`);
    const brokerId = generateIdentity("broker", join(keys, "keys"));
    const clientId = generateIdentity("client", join(keys, "client"));
    trustKey(clientId, join(keys, "trust"));
    const env = {
      HERALD_BROKER__SUBMIT__TCP: `[${endpoint}]`,
      ...(secure
        ? {
            HERALD_SECURITY__KEYS_DIR: join(keys, "keys"),
            HERALD_SECURITY__TRUST_DIR: join(keys, "trust"),
            HERALD_SECURITY__IDENTITY: "broker",
            HERALD_SECURITY__CURVE: "true",
            HERALD_SECURITY__REQUIRE_SIGNATURES: "true",
          }
        : {}),
    };
    broker = await startServe(await newBrokerHome(env));
    const { HeraldClient } = await import(`${DIST}/client/publisher.js`);
    client = new HeraldClient({
      endpoint,
      ...(secure ? { curve: { identity: clientId, serverKey: brokerId.curvePublic }, sign: clientId } : {}),
    });
    const n = ctx.n(20_000, 2000);
    const lat = [];
    let next = 0;
    const lane = async () => {
      while (next < n) {
        next++;
        const t = nowMs();
        await client.publish("bench.secure", { text: "x".repeat(64) });
        lat.push(nowMs() - t);
      }
    };
    await lane(); // warm up the connection (and the CURVE handshake) before timing
    next = 0;
    lat.length = 0;
    const t0 = nowMs();
    await Promise.all(Array.from({ length: WINDOW }, lane));
    const secs = (nowMs() - t0) / 1000;
    return { rate: n / secs, ...latencyUs(lat) };
  } finally {
    await client?.close();
    await broker?.stop();
    rmSync(keys, { recursive: true, force: true });
  }
}
