import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProtocolError } from "../src/errors.js";
import { createMessage } from "../src/wire/message.js";
import {
  decodeReply,
  decodeSubmitRequest,
  encodeSubmitRequest,
  SUBMIT_PROTOCOL,
} from "../src/wire/submit.js";

const P = Buffer.from(SUBMIT_PROTOCOL);

function onlyProtocolErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
  }
}

describe("submit request parser on hostile input", () => {
  it("random frames: a ProtocolError or a decoded request, nothing else (1,000 runs)", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 5 }), (frames) => {
        onlyProtocolErrors(() =>
          decodeSubmitRequest(
            frames.map((f) => Buffer.from(f)),
            1000,
          ),
        );
      }),
      { numRuns: 1000 },
    );
  });

  it("well-framed requests with random JSON: per-message problems are reported, never thrown (1,000 runs)", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (value) => {
        const payload = Buffer.from(JSON.stringify({ messages: Array.isArray(value) ? value : [value] }));
        onlyProtocolErrors(() => {
          const r = decodeSubmitRequest([P, Buffer.from("rid"), payload], 100_000);
          for (const m of r.messages) if (!m.ok) expect(typeof m.problem).toBe("string");
        });
      }),
      { numRuns: 1000 },
    );
  });

  it("truncated and bit-flipped valid requests never escape as anything but a ProtocolError (1,000 runs)", () => {
    const good = encodeSubmitRequest("r1", [
      createMessage({ topic: "a.b", body: { x: [1, 2, { y: "é" }] } }),
    ]);
    fc.assert(
      fc.property(fc.nat(2), fc.nat(), fc.nat(7), fc.boolean(), (frame, at, bit, truncate) => {
        const frames = good.map((f) => Buffer.from(f));
        const f = frames[frame]!;
        const pos = f.length === 0 ? 0 : at % f.length;
        frames[frame] = truncate
          ? f.subarray(0, pos)
          : Buffer.from(f.map((b, i) => (i === pos ? b ^ (1 << bit) : b)));
        onlyProtocolErrors(() => decodeSubmitRequest(frames, 1000));
        onlyProtocolErrors(() => decodeReply(frames));
      }),
      { numRuns: 1000 },
    );
  });
});
