/**
 * One oversized legacy message must not end ingest from its endpoint: libzmq's cap is the envelope limit
 * itself (checked per frame, before the frame is read, so what one connection holds is bounded), a frame
 * over it ends the connection, and the connection is rebuilt (libzmq never reconnects after that protocol
 * error); the drop is counted as malformed and logged.
 */
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import type { Submitter } from "../src/broker/local-submit.js";
import { Ingest } from "../src/shim/ingest.js";
import type { Logger } from "../src/util/log.js";
import { pythonJson } from "../src/wire/json.js";
import type { Message } from "../src/wire/message.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts } from "./helpers/serve.js";
import { collect, startShimBroker } from "./shim-helpers.js";

const TOPIC = "org.fedoraproject.prod.bodhi.update.comment";
const LIMIT = 8 * 1024;

function recordingLog(lines: string[]): Logger {
  const log: Logger = {
    debug: () => {},
    info: (m, f) => lines.push(`info ${m} ${JSON.stringify(f)}`),
    warn: (m, f) => lines.push(`warn ${m} ${JSON.stringify(f)}`),
    error: (m, f) => lines.push(`error ${m} ${JSON.stringify(f)}`),
    child: () => log,
  };
  return log;
}

function frames(i: number, body: Record<string, unknown>): [string, string] {
  const env = {
    i,
    msg: body,
    msg_id: `2024-${randomUUID()}`,
    timestamp: 1700000000,
    topic: TOPIC,
    username: "apache",
  };
  return [TOPIC, pythonJson(env)];
}

/** Frames whose envelope is exactly `bytes` long. */
function frameOf(bytes: number, i: number, mark: string): [string, string] {
  const [, bare] = frames(i, { mark, pad: "" });
  const out = frames(i, { mark, pad: "x".repeat(bytes - Buffer.byteLength(bare)) });
  // msg_id has a fixed length, so the padding lands exactly.
  expect(Buffer.byteLength(out[1])).toBe(bytes);
  return out;
}

let cleanup: (() => Promise<void>) | undefined;
afterEach(async () => {
  await cleanup?.();
  cleanup = undefined;
});

async function setup(): Promise<{ pub: zmq.Publisher; ingest: Ingest; got: Message[]; logs: string[] }> {
  const [port] = await freePorts(1);
  const ep = `tcp://127.0.0.1:${port}`;
  const pub = new zmq.Publisher({ linger: 0 });
  await pub.bind(ep);
  const got: Message[] = [];
  const logs: string[] = [];
  const submitter: Submitter = {
    submit: async (ms) => {
      got.push(...ms);
      return ms.map(() => ({ duplicate: false }));
    },
  } as Submitter;
  const ingest = new Ingest({ submitter, brokerName: "b", log: recordingLog(logs), maxMessageBytes: LIMIT });
  ingest.read("bodhi.app01", ep, { host: "app01", app: "bodhi" });
  cleanup = async () => {
    await ingest.close();
    pub.close();
  };
  return { pub, ingest, got, logs };
}

/** Send probes until one arrives (ZeroMQ's slow joiner, and reconnects); returns how many went out. */
async function linked(pub: zmq.Publisher, got: Message[], from: number): Promise<number> {
  for (let n = from; n < from + 300; n++) {
    await pub.send(frames(n, { probe: n }));
    if (await waitFor(() => got.some((m) => m.body["probe"] === n), 100)) return n;
  }
  throw new Error("the ingest never received a probe");
}

describe("legacy ingest: oversized messages", () => {
  it("ingests an envelope at the limit; one byte over ends the connection unread, counted, said, rebuilt", async () => {
    const { pub, ingest, got, logs } = await setup();
    const n = await linked(pub, got, 1);
    await pub.send(frameOf(LIMIT, n + 1, "at"));
    expect(await waitFor(() => got.some((m) => m.body["mark"] === "at"))).toBe(true);
    await pub.send(frameOf(LIMIT + 1, n + 2, "over"));
    // What the publisher sends until the connection is rebuilt is lost to herald: probe until it is back.
    await linked(pub, got, n + 3);
    expect(ingest.counters("bodhi.app01").malformed).toBe(1);
    expect(logs.some((l) => l.startsWith("warn") && /dropped/.test(l))).toBe(true);
    expect(got.some((m) => m.body["mark"] === "over")).toBe(false);
  });

  it("rebuilds a connection dropped for a message far over the limit, and says so", async () => {
    const { pub, ingest, got, logs } = await setup();
    const n = await linked(pub, got, 1);
    // Over libzmq's cap (the limit): libzmq drops the connection and would never reconnect.
    await pub.send(frames(n + 1, { blob: "x".repeat(LIMIT * 40) }));
    await linked(pub, got, n + 2);
    expect(logs.some((l) => l.startsWith("warn") && /dropped/.test(l))).toBe(true);
    expect(ingest.counters("bodhi.app01").malformed).toBeGreaterThan(0);
  });
});

describe("legacy ingest in herald serve: the size limit", () => {
  it("takes in a body the broker accepts even when ensure_ascii triples it on the wire", async () => {
    const [port] = await freePorts(1);
    const ep = `tcp://127.0.0.1:${port}`;
    const pub = new zmq.Publisher({ linger: 0 });
    await pub.bind(ep);
    const shim = await startShimBroker({ services: { "bodhi.app01": { stage: "legacy", endpoints: [ep] } } });
    cleanup = async () => {
      await shim.stop();
      pub.close();
    };
    const { msgs } = collect(shim.heraldSub());
    let linkedAt = -1;
    for (let n = 0; n < 300 && linkedAt < 0; n++) {
      await pub.send(frames(n, { probe: n }));
      if (await waitFor(() => msgs.some((m) => m.body["probe"] === n), 100)) linkedAt = n;
    }
    expect(linkedAt).toBeGreaterThanOrEqual(0);
    // 1,000,011 UTF-8 bytes of body (under the 1 MiB default), about 3 MB as fedmsg sends it.
    const [topic, envelope] = frames(1000, { wide: "é".repeat(500_000) });
    expect(envelope.length).toBeGreaterThan(3_000_000);
    await pub.send([topic, envelope]);
    expect(await waitFor(() => msgs.some((m) => m.body["wide"] !== undefined), 10_000)).toBe(true);
  }, 60_000);
});
