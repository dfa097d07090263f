import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readCassette } from "../src/testing/recording.js";
import { decodeEnvelope, encodeEnvelope } from "../src/wire/herald.js";
import { decodeLegacyEnvelope } from "../src/wire/legacy.js";
import { createMessage } from "../src/wire/message.js";

describe("a decoder's own body limit is named as such, not as limits.maxBodyBytes", () => {
  const big = createMessage({ topic: "org.example.t", body: { a: "x".repeat(2_200_000) } }, 4 << 20);

  it("herald envelopes (herald replay reads cassettes without a limit)", () => {
    expect(() => decodeEnvelope(encodeEnvelope(big))).toThrow(
      /body is 2200008 bytes, the limit is 2097152 \(the decoder's default: 2 x the default limits\.maxBodyBytes, 1048576\)$/,
    );
    expect(() => decodeEnvelope(encodeEnvelope(big), 1000)).toThrow(
      /the limit is 1000 \(limits\.maxBodyBytes\)$/,
    );
  });

  it("herald replay's cassette reader", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-limitname-"));
    try {
      const file = join(dir, "big.jsonl");
      const raw = encodeEnvelope(big).toString("base64");
      writeFileSync(
        file,
        `${JSON.stringify({ v: 1, at: big.sentAt, format: "herald", via: "t", topic: big.topic, raw })}\n`,
      );
      await expect(readCassette(file).next()).rejects.toThrow(
        /big\.jsonl:1: .*the limit is 2097152 \(the decoder's default: 2 x the default limits\.maxBodyBytes, 1048576\)$/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fedmsg envelopes", () => {
    const env = `{"msg":{"a":"${"x".repeat(1_100_000)}"},"msg_id":"2026-a","timestamp":1700000000,"topic":"org.example.dev.app.x"}`;
    expect(() => decodeLegacyEnvelope(Buffer.from(env))).toThrow(
      /the limit is 1048576 \(the decoder's default: the default limits\.maxBodyBytes, 1048576\)$/,
    );
  });
});
