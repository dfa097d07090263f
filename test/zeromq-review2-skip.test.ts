/**
 * A message a PUB socket cannot carry is passed over by the dispatcher; on that socket it must still use
 * up its `seq` (fedmsg: `i`), or its subscribers (fedmsg's told to watch `i`) could not see the loss.
 */
import { afterEach, describe, expect, it } from "vitest";
import { buildSinks, publishLimitHint } from "../src/broker/from-config.js";
import { loadConfig } from "../src/config/load.js";
import type { HeraldError } from "../src/errors.js";
import type { Transport } from "../src/transport/types.js";
import { quietLogger } from "../src/transport/zeromq-common.js";
import { ZmqPublishTransport } from "../src/transport/zeromq-pub.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { silentLogger } from "../src/util/log.js";
import { encodeFedoraMessaging } from "../src/wire/fedora-messaging.js";
import { createMessage } from "../src/wire/message.js";
import { Collector, linkUp, msg, rootWord } from "./contract/transport-contract.js";
import { freePorts } from "./helpers/serve.js";

const opened: Transport[] = [];
afterEach(async () => {
  for (const t of opened.splice(0)) await t.close();
});

async function link(format: "herald" | "legacy", tooLargeHint?: string) {
  const pub = new ZmqPublishTransport({
    name: "pub",
    endpoint: "tcp://127.0.0.1:*",
    format,
    linger: 0,
    maxMessageBytes: 2000,
    ...(tooLargeHint ? { tooLargeHint } : {}),
  });
  opened.push(pub);
  await pub.open();
  const sub = new ZmqSubscribeTransport({
    name: "sub",
    endpoints: [pub.lastEndpoint!],
    format,
    logger: quietLogger,
    legacySequence: () => true, // the socket's own `i`, as for a fedmsg app's port
  });
  opened.push(sub);
  const root = rootWord();
  const col = new Collector(sub.receive({ patterns: [`${root}.#`] }));
  await linkUp(pub, root, [col]);
  return { pub, col, root };
}

async function refusal(p: Promise<unknown>): Promise<HeraldError> {
  try {
    await p;
  } catch (err) {
    return err as HeraldError;
  }
  throw new Error("expected a refusal");
}

describe.each(["herald", "legacy"] as const)("%s PUB socket, a message it cannot carry", (format) => {
  it("sent alone (as the dispatcher finally sends it), it uses up its number: the gap shows", async () => {
    const { pub, col, root } = await link(format);
    await pub.send([msg(`${root}.a`, {})]);
    const err = await refusal(pub.send([msg(`${root}.big`, { blob: "x".repeat(3000) })]));
    expect(err.code).toBe("TOO_LARGE");
    expect(err.message).toMatch(
      /not sent on this socket \((seq|i) \d+ is used up: its subscribers see a gap/,
    );
    await pub.send([msg(`${root}.c`, {})]);
    await col.waitFor(() => col.payload().length === 2, "a and c");
    const [a, c] = col.payload().map((d) => d.message.seq ?? 0);
    expect(c! - a!).toBe(2);
    expect(pub.health().counters["skipped"]).toBe(1);
  });

  it("in a batch of several, nothing is used up (the dispatcher sends them again one by one)", async () => {
    const { pub, col, root } = await link(format);
    const batch = [
      msg(`${root}.a`, {}),
      msg(`${root}.big`, { blob: "x".repeat(3000) }),
      msg(`${root}.c`, {}),
    ];
    expect((await refusal(pub.send(batch))).message).toMatch(
      /the batch was not sent \(no sequence number used up\)/,
    );
    await pub.send([batch[0]!]);
    await pub.send([batch[2]!]);
    await col.waitFor(() => col.payload().length === 2, "a and c");
    const [a, c] = col.payload().map((d) => d.message.seq ?? 0);
    expect(c! - a!).toBe(1);
  });
});

describe("the TOO_LARGE text names what the user can change", () => {
  it("a broker's PUB socket points at limits.maxBodyBytes, not a key that does not exist", async () => {
    const { pub, root } = await link("legacy", publishLimitHint("legacy"));
    const err = await refusal(pub.send([msg(`${root}.big`, { blob: "\x7f".repeat(3000) })]));
    expect(err.message).toMatch(/3 x limits\.maxBodyBytes \+ 256 KiB/);
    expect(err.message).toMatch(/raise limits\.maxBodyBytes/);
    expect(err.message).not.toMatch(/both ends/);
    expect(publishLimitHint("herald")).toMatch(/2 x limits\.maxBodyBytes \+ 64 KiB/);
  });
  it("the broker's legacy socket says so for a body the fedmsg JSON makes 6 times longer", async () => {
    const [herald, legacy] = await freePorts(2);
    const { config } = loadConfig({
      env: {
        HERALD_BROKER__PUBLISH__0__ENDPOINT: `tcp://127.0.0.1:${herald}`,
        HERALD_BROKER__PUBLISH__1__ENDPOINT: `tcp://127.0.0.1:${legacy}`,
      },
      systemPath: "/nonexistent/herald.yaml",
    });
    const sink = buildSinks(config, silentLogger)[1]!;
    opened.push(sink);
    await sink.open();
    // 700,000 DEL: 700,010 bytes of body (under 1 MiB, accepted), 4.2 MB as fedmsg JSON.
    const err = await refusal(
      sink.send([createMessage({ topic: "t.del", body: { s: "\x7f".repeat(700_000) } })]),
    );
    expect(err.code).toBe("TOO_LARGE");
    expect(err.message).toMatch(/3 x limits\.maxBodyBytes \+ 256 KiB .*raise limits\.maxBodyBytes/);
  });
});

describe("fedora-messaging priority", () => {
  const priorityOf = (priority: string | number) =>
    encodeFedoraMessaging(createMessage({ topic: "t.p", body: {}, headers: { priority } })).properties
      .priority;

  it("takes a decimal string as `herald publish --header priority=7` gives it, as for severity", () => {
    expect(priorityOf("7")).toBe(7);
    expect(priorityOf(" 7 ")).toBe(7);
    expect(priorityOf(5)).toBe(5);
  });

  it("sets none for anything that is not an integer 0-255", () => {
    for (const p of ["high", "300", "2.5", "-1", "", 256, 2.5]) expect(priorityOf(p)).toBeUndefined();
  });
});
