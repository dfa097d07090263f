import { decodeEnvelope } from "../wire/herald.js";
import { isJsonObject } from "../wire/json.js";
import { decodeLegacyEnvelope } from "../wire/legacy.js";
import type { Message } from "../wire/message.js";

/** Which envelope a SUB socket expects; "auto" tells herald and fedmsg envelopes apart per message. */
export type FrameFormat = "herald" | "legacy" | "auto";

export type Decoded =
  /** `i`: fedmsg's counter as sent (legacy envelopes). */
  | { message: Message; format: "herald" | "legacy"; raw: Buffer; i?: number }
  | { problem: string; raw?: Buffer };

export interface DecodeOptions {
  /** Largest body accepted (the envelope frame limit bounds it anyway). */
  maxBytes: number;
  /** Origin host/app for fedmsg envelopes, which do not carry them. */
  legacyDefaults: { host?: string; app?: string };
}

/**
 * Decode one multipart ZeroMQ message `[topic, envelope]` without throwing: anything unexpected comes
 * back as `{ problem }` for the caller to count and log. The topic frame must equal the envelope's topic:
 * the frame is what ZeroMQ filtered on, and a mismatch would let a message slip past a subscription.
 */
export function decodeFrames(frames: readonly Buffer[], format: FrameFormat, o: DecodeOptions): Decoded {
  if (frames.length !== 2) return { problem: `expected 2 frames [topic, envelope], got ${frames.length}` };
  const [topicFrame, raw] = frames as [Buffer, Buffer];
  const kind = format === "auto" ? detect(raw) : format;
  if (typeof kind === "object") return { problem: kind.problem, raw };
  let message: Message;
  let i: number | undefined;
  try {
    if (kind === "herald") message = decodeEnvelope(raw, o.maxBytes);
    else ({ message, i } = decodeLegacyEnvelope(raw, o.legacyDefaults, o.maxBytes));
  } catch (err) {
    return { problem: err instanceof Error ? err.message : String(err), raw };
  }
  const topic = topicFrame.toString("utf8");
  if (topic !== message.topic)
    return {
      problem: `topic frame ${JSON.stringify(topic.slice(0, 120))} differs from the envelope topic ${JSON.stringify(message.topic.slice(0, 120))}`,
      raw,
    };
  return i === undefined ? { message, format: kind, raw } : { message, format: kind, raw, i };
}

/** herald envelopes have `v: 1` and `sent_at`; fedmsg ones have `msg_id` and `msg`. */
export function detect(raw: Buffer): "herald" | "legacy" | { problem: string } {
  let obj: unknown;
  try {
    obj = JSON.parse(raw.toString("utf8"));
  } catch (err) {
    return { problem: `envelope is not valid JSON: ${(err as Error).message}` };
  }
  if (!isJsonObject(obj)) return { problem: "envelope is not a JSON object" };
  if (obj["v"] !== undefined && "sent_at" in obj) return "herald";
  if ("msg_id" in obj && "msg" in obj) return "legacy";
  return { problem: "envelope is neither a herald envelope (v, sent_at) nor a fedmsg one (msg_id, msg)" };
}
