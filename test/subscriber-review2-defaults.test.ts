/**
 * Consumer-side defaults: what a Subscriber with no handlers reports on its own (gaps, verification
 * failures, a failed source), its one-reader rule, next() after close, and `herald tail`'s usage and
 * connection hint.
 */
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hintIfUnconnected } from "../src/cli/tail.js";
import { subscribe } from "../src/client/index.js";
import { Subscriber } from "../src/client/subscriber.js";
import { ZmqPublishTransport } from "../src/transport/zeromq-pub.js";
import { createLogger, rateLimitedLogger, refusalLogger } from "../src/util/log.js";
import { ScriptedSource } from "./helpers/fake-source.js";
import { CLI, freePorts, noBrokerHome } from "./helpers/serve.js";

let stderr: string[];
beforeEach(() => {
  stderr = [];
  vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  });
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

describe("a Subscriber with no handler and no logger is not silent", () => {
  it("a gap is a warning on stderr", async () => {
    const src = new ScriptedSource();
    const sub = new Subscriber({ sources: [src] });
    src.push("t.x", 1);
    src.push("t.x", 5);
    await sub.next();
    await sub.next();
    await sub.close();
    expect(sub.stats()).toMatchObject({ gaps: 1, missed: 3 });
    expect(stderr.join("")).toMatch(/WARN .*gap in sequence: messages were missed .*missed=3/);
  });

  it("a message failing verification is a warning on stderr", async () => {
    const src = new ScriptedSource();
    const sub = new Subscriber({ sources: [src], verify: { trust: { byKeyId: () => undefined } } });
    src.push("t.x", 1); // unsigned
    await until("the rejection", () => (sub.stats().rejected.UNSIGNED ?? 0) === 1);
    await sub.close();
    expect(stderr.join("")).toMatch(/WARN .*dropped a message that failed verification .*code=UNSIGNED/);
  });

  it("a source that fails is an error on stderr", async () => {
    const src = new ScriptedSource();
    const sub = new Subscriber({ sources: [src] });
    src.fail();
    await until("the report", () => stderr.join("").includes("subscription failed"));
    await sub.close();
    expect(stderr.join("")).toMatch(/ERROR .*subscription failed .*socket went away/);
  });

  it("a given logger takes the reports instead (nothing on stderr)", async () => {
    const lines: string[] = [];
    const src = new ScriptedSource();
    const sub = new Subscriber({ sources: [src], log: createLogger({ write: (l) => lines.push(l) }) });
    src.push("t.x", 1);
    src.push("t.x", 3);
    await sub.next();
    await sub.next();
    await sub.close();
    expect(lines.join("\n")).toMatch(/gap in sequence/);
    expect(stderr.join("")).not.toMatch(/gap in sequence/);
  });
});

describe("rateLimitedLogger", () => {
  it("passes a burst per message text and window, then reports how many it held back", () => {
    const lines: string[] = [];
    let now = 0;
    const log = rateLimitedLogger(createLogger({ write: (l) => lines.push(l) }), {
      burst: 2,
      intervalMs: 1000,
      now: () => now,
    });
    for (let i = 0; i < 5; i++) log.warn("gap", { n: i });
    log.warn("other");
    expect(lines.map((l) => l.replace(/^\S+ /, ""))).toEqual([
      "WARN  gap n=0",
      "WARN  gap n=1",
      "WARN  other",
    ]);
    now = 1000;
    log.warn("gap", { n: 5 });
    expect(lines.at(-1)).toMatch(/WARN {2}gap n=5 suppressed=3$/);
  });
});

describe("refusalLogger", () => {
  it("logs every refusal while they are few, then at most 20 per error code and window", () => {
    const lines: string[] = [];
    const log = refusalLogger(createLogger({ write: (l) => lines.push(l) }));
    for (let i = 0; i < 30; i++) log.warn("message refused", { code: "UNAUTHORIZED_TOPIC", id: `u${i}` });
    for (let i = 0; i < 3; i++) log.warn("message refused", { code: "BAD_SIGNATURE", id: `b${i}` });
    expect(lines.filter((l) => l.includes("UNAUTHORIZED_TOPIC"))).toHaveLength(20);
    expect(lines.filter((l) => l.includes("BAD_SIGNATURE"))).toHaveLength(3);
  });
});

describe("one reader per subscriber, and next() after close()", () => {
  it("a second for-await loop is told what happened", async () => {
    const sub = new Subscriber({ sources: [new ScriptedSource()] });
    const first = sub.next();
    await expect(sub.next()).rejects.toThrow(
      /this subscriber already has a reader: one for-await loop per subscriber/,
    );
    await sub.close();
    await expect(first).resolves.toMatchObject({ done: true });
  });

  it("two next() at once are refused also when messages are buffered (the first would never be acked)", async () => {
    const src = new ScriptedSource();
    const sub = new Subscriber({ sources: [src] });
    src.push("t.x", 1);
    src.push("t.x", 2);
    await new Promise((r) => setImmediate(r)); // both pumped into the subscriber's buffer
    const first = sub.next();
    await expect(sub.next()).rejects.toThrow(/already has a reader/);
    await expect(first).resolves.toMatchObject({ done: false });
    await sub.close();
  });

  it("after close(), next() and the iterator both say done, even with messages read ahead", async () => {
    const src = new ScriptedSource();
    const sub = new Subscriber({ sources: [src], onGap: () => {} });
    src.push("t.x", 1);
    src.push("t.x", 2);
    await until("both buffered", () => sub.stats().received === 2);
    await sub.close();
    await expect(sub.next()).resolves.toMatchObject({ done: true });
    await expect(sub[Symbol.asyncIterator]().next()).resolves.toMatchObject({ done: true });
  });
});

describe("herald tail", () => {
  const { dir, env } = noBrokerHome("herald-tail-r2-");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each(["1.5", "0", "2x", "1e3"])("--count %s is a usage error (exit 2)", (n) => {
    const r = spawnSync(process.execPath, [CLI, "tail", "--endpoint", "tcp://127.0.0.1:1", "--count", n], {
      env,
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--count takes a whole number of messages/);
  });

  it("says on stderr when it is not connected to its endpoint, naming it", async () => {
    const [port] = await freePorts(1);
    const endpoint = `tcp://127.0.0.1:${port}`;
    const sub = subscribe(["#"], { endpoints: { herald: [endpoint] } });
    const written: string[] = [];
    hintIfUnconnected(sub, (t) => written.push(t), 10);
    await until("the hint", () => written.length > 0);
    await sub.close();
    expect(written[0]).toContain(`herald tail: not connected to ${endpoint} after 0.01 s, still trying`);
  });

  it("says nothing when connected", async () => {
    const pub = new ZmqPublishTransport({
      name: "p",
      endpoint: "tcp://127.0.0.1:*",
      format: "herald",
      linger: 0,
    });
    await pub.open();
    const sub = subscribe(["#"], { endpoints: { herald: [pub.lastEndpoint!] } });
    await until("connected", () => sub.sourceHealth().every((s) => s.health.state === "up"));
    const written: string[] = [];
    const timer = hintIfUnconnected(sub, (t) => written.push(t), 0);
    await new Promise((r) => setTimeout(r, 20));
    clearTimeout(timer);
    await sub.close();
    await pub.close();
    expect(written).toEqual([]);
  });
});
