// Figure group 9: the cost of signatures: Ed25519 sign and verify per message (ops/s), measured only once
// src/security/sign.ts exports signMessage/verifyMessage (built to dist/). CURVE on/off is not measured yet.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { figure, notMeasured } from "../lib/figure.mjs";
import { DIST, nowMs, repeat } from "../lib/util.mjs";

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
  const note = `Ed25519 over the canonical envelope (node:crypto), one message at a time, ~200 B bodies${bad ? `; ${bad} verifications FAILED` : ""}; CURVE on/off throughput not measured yet`;
  return [
    figure({ figure: "security.sign", values: signRates, unit: "ops/s", note }),
    figure({ figure: "security.verify", values: verifyRates, unit: "ops/s" }),
  ];
}
