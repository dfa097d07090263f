import { ProtocolError } from "../errors.js";

/**
 * Z85 (ZeroMQ RFC 32): 4 bytes become 5 printable characters. CURVE keys are 32 bytes, so 40 characters.
 * zeromq.js takes Z85 key strings but exports no encoder, hence this one.
 */
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

export function z85Encode(data: Uint8Array): string {
  if (data.length % 4 !== 0)
    throw new ProtocolError(
      `Z85 input must be a multiple of 4 bytes, got ${data.length}: pad the data first`,
    );
  let out = "";
  for (let i = 0; i < data.length; i += 4) {
    // Unsigned 32-bit big-endian word; multiplication keeps it out of signed bit-op territory.
    let value = ((data[i]! * 256 + data[i + 1]!) * 256 + data[i + 2]!) * 256 + data[i + 3]!;
    const chunk: string[] = [];
    for (let k = 0; k < 5; k++) {
      chunk.push(ALPHABET[value % 85]!);
      value = Math.floor(value / 85);
    }
    out += chunk.reverse().join("");
  }
  return out;
}

export function z85Decode(text: string): Buffer {
  if (typeof text !== "string" || text.length % 5 !== 0)
    throw new ProtocolError(
      `Z85 text must be a multiple of 5 characters, got ${typeof text === "string" ? text.length : typeof text}`,
    );
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0, o = 0; i < text.length; i += 5, o += 4) {
    let value = 0;
    for (let k = 0; k < 5; k++) {
      const code = text.charCodeAt(i + k);
      const digit = code < 128 ? DECODE[code]! : -1;
      if (digit < 0)
        throw new ProtocolError(
          `Z85 text has an invalid character at offset ${i + k}: keys use the Z85 alphabet`,
        );
      value = value * 85 + digit;
    }
    if (value > 0xffffffff)
      throw new ProtocolError(`Z85 group at offset ${i} exceeds 32 bits: the text is not Z85`);
    out.writeUInt32BE(value, o);
  }
  return out;
}

/** Decode a 40-character Z85 CURVE key to its 32 raw bytes. */
export function z85Key(text: string): Buffer {
  if (typeof text !== "string" || text.length !== 40)
    throw new ProtocolError("a CURVE key in Z85 is exactly 40 characters");
  return z85Decode(text);
}
