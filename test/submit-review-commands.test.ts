import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Dealer } from "zeromq";
import { ProtocolError } from "../src/errors.js";
import { createMessage } from "../src/wire/message.js";
import { decodeReply, decodeRequest, encodeSubmitRequest, type SubmitReply } from "../src/wire/submit.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";

// Control commands share the submit socket. They used to be recognised by one exact JSON prefix, before the
// frame, protocol and request id checks: a HERALD9 ping got a pong, and a pretty-printed one BAD_REQUEST.

let tb: TestBroker;
beforeAll(async () => {
  tb = await startTestBroker();
});
afterAll(async () => {
  await tb.stop();
});

async function send(frames: string[]): Promise<{ requestId: string; reply: SubmitReply }> {
  const d = new Dealer({ linger: 0, receiveTimeout: 10_000 });
  d.connect(tb.submit);
  try {
    await d.send(frames);
    return decodeReply(await d.receive());
  } finally {
    d.close();
  }
}

const PONG = { result: { pong: true, broker: "test" } };

describe("submit socket: commands go through the request checks", () => {
  it("refuses a command with another protocol version, a 200-byte request id, or 2 frames", async () => {
    const ping = '{"command":"ping"}';
    expect((await send(["HERALD9", "c1", ping])).reply).toEqual({
      error: { code: "BAD_REQUEST", message: 'first frame must be "HERALD1" (the submit protocol version)' },
    });
    expect((await send(["HERALD1", "x".repeat(200), ping])).reply).toEqual({
      error: { code: "BAD_REQUEST", message: "request id is 200 bytes; at most 64" },
    });
    expect((await send(["HERALD1", ping])).reply).toMatchObject({ error: { code: "BAD_REQUEST" } });
  });

  it("recognises a command in any JSON layout and key order", async () => {
    const layouts = [
      '{"command":"ping"}',
      '{ "command": "ping" }',
      '{"args": {}, "command": "ping"}',
      '{\n  "command": "ping"\n}',
    ];
    for (const payload of layouts)
      expect(await send(["HERALD1", "c2", payload])).toEqual({ requestId: "c2", reply: PONG });
  });

  it("names what is wrong with a malformed command", async () => {
    const cases: Array<[string, RegExp]> = [
      ['{"command": 5}', /'command' must be a string/],
      ['{"command": "ping", "args": []}', /'args' must be an object/],
      ['{"command": "ping", "messages": []}', /either 'messages' or a 'command'/],
    ];
    for (const [payload, re] of cases) {
      const { reply } = await send(["HERALD1", "c3", payload]);
      expect(reply).toMatchObject({ error: { code: "BAD_REQUEST", message: expect.stringMatching(re) } });
    }
  });
});

describe("decodeRequest", () => {
  it("parses a submit's payload once (the submit decode is on the hot path)", () => {
    const frames = encodeSubmitRequest("r1", [createMessage({ topic: "a.b", body: { k: 1 } })]).map((f) =>
      Buffer.from(f),
    );
    const parse = vi.spyOn(JSON, "parse");
    try {
      const r = decodeRequest(frames, 10);
      expect("messages" in r && r.messages[0]?.ok).toBe(true);
      expect(parse).toHaveBeenCalledTimes(1);
    } finally {
      parse.mockRestore();
    }
  });

  it("checks the frames before it reads a command", () => {
    const cmd = Buffer.from('{"command":"status"}');
    expect(() => decodeRequest([Buffer.from("HERALD2"), Buffer.from("r"), cmd], 10)).toThrow(ProtocolError);
    expect(decodeRequest([Buffer.from("HERALD1"), Buffer.from("r"), cmd], 10)).toEqual({
      requestId: Buffer.from("r"),
      command: "status",
      args: {},
    });
  });
});
