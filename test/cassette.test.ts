import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { HeraldError, ProtocolError } from "../src/errors.js";
import { Recorder, readCassette } from "../src/testing/recording.js";
import { encodeEnvelope } from "../src/wire/herald.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";
import { CLI } from "./helpers/serve.js";

const brokers: TestBroker[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "herald-cassette-"));
  dirs.push(dir);
  return dir;
}

function line(m: Message, format = "herald", raw = encodeEnvelope(m).toString("base64")): string {
  return JSON.stringify({ v: 1, at: new Date().toISOString(), format, via: "test", topic: m.topic, raw });
}

const good = (i: number): string => line(createMessage({ topic: "cas.t", body: { i } }));

async function readAll(path: string): Promise<Message[]> {
  const got: Message[] = [];
  for await (const { message } of readCassette(path)) got.push(message);
  return got;
}

describe("readCassette names file:line for every kind of bad line", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["null", "null", /expected a JSON object/],
    ["an array", "[1]", /expected a JSON object/],
    ["raw that is not base64", JSON.stringify({ v: 1, format: "herald", raw: "not base64!" }), /not base64/],
    [
      "raw that is no envelope",
      JSON.stringify({ v: 1, format: "herald", raw: Buffer.from("not json").toString("base64") }),
      /herald envelope does not decode/,
    ],
    [
      "an invalid envelope",
      JSON.stringify({ v: 1, format: "herald", raw: Buffer.from('{"v":1,"id":"x"}').toString("base64") }),
      /herald envelope does not decode/,
    ],
    [
      "an unknown format",
      line(createMessage({ topic: "a.b", body: {} }), "carrier-pigeon"),
      /"carrier-pigeon"/,
    ],
  ];
  for (const [what, bad, why] of cases)
    it(`rejects ${what}`, async () => {
      const file = join(tempDir(), "c.jsonl");
      writeFileSync(file, `${good(0)}\n${bad}\n${good(2)}\n`);
      const err = await readAll(file).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as Error).message).toMatch(new RegExp(`^${file}:2: `));
      expect((err as Error).message).toMatch(why);
    });
});

describe("Recorder", () => {
  it("records a fedora-messaging delivery so that it reads back as the same message", async () => {
    const file = join(tempDir(), "fm.jsonl");
    const message = createMessage({ topic: "org.fedoraproject.prod.x", body: { a: 1 } });
    const rec = new Recorder(file);
    // What the AMQP consumer delivers for fedora-messaging: raw is the AMQP body alone.
    rec.write({
      message,
      format: "fedora-messaging",
      via: "amqp:q",
      raw: Buffer.from(JSON.stringify(message.body)),
      ack: async () => {},
    });
    await rec.close();
    const [entry] = readFileSync(file, "utf8").trim().split("\n");
    expect(JSON.parse(entry!)).toMatchObject({ format: "herald", via: "amqp:q" });
    const back = await readAll(file);
    expect(back.map((m) => [m.id, m.topic, m.body])).toEqual([[message.id, message.topic, { a: 1 }]]);
  });

  it("reports a failed write from close(), naming the file, instead of crashing the process", async () => {
    const failures: HeraldError[] = [];
    const rec = new Recorder("/dev/full", { onError: (e) => failures.push(e) });
    const message = createMessage({ topic: "a.b", body: {} });
    rec.write({ message, format: "herald", via: "t", ack: async () => {} });
    // Bounded: without an 'error' listener close() never settles.
    const err = await Promise.race([
      rec.close().catch((e: unknown) => e),
      new Promise((r) => setTimeout(() => r("close() did not settle"), 5000)),
    ]);
    expect(err).toBeInstanceOf(HeraldError);
    expect((err as Error).message).toMatch(/^cannot write cassette \/dev\/full \(ENOSPC: .*0 of 1 messages/);
    expect(failures).toEqual([err]);
    expect(() => rec.write({ message, format: "herald", via: "t", ack: async () => {} })).toThrow(
      err as Error,
    );
  });
});

describe("herald record and replay on bad files", () => {
  const run = promisify(execFile);
  const env = { ...process.env, HERALD_CONFIG: "" };

  it("replay checks the whole cassette first: a bad line at the end sends nothing", async () => {
    const file = join(tempDir(), "big-bad.jsonl");
    const lines = Array.from({ length: 600 }, (_, i) => good(i));
    writeFileSync(file, `${lines.join("\n")}\nnull\n`);
    const b = await startTestBroker();
    brokers.push(b);
    const r = await run(process.execPath, [CLI, "replay", file, "--endpoint", b.submit], { env }).catch(
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect(r).toMatchObject({ code: 1 });
    expect(r.stderr).toMatch(new RegExp(`^herald: PROTOCOL: ${file}:601: `));
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(b.broker.status().outbox.headSeq).toBe(0);
  });

  it("record into a full disk stops and exits 1 with one line naming the file", async () => {
    const b = await startTestBroker();
    brokers.push(b);
    const child = spawn(process.execPath, [CLI, "record", "/dev/full", "rec.#", "--count", "1000"], {
      env: { ...env, HERALD_BROKER__PUBLISH__0__ENDPOINT: b.pub.herald },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.on("exit", r));
    let code: number | null | undefined;
    void exited.then((c) => {
      code = c;
    });
    // The subscriber connects asynchronously: publish until the recorder has hit the full disk.
    const client = b.client();
    for (let i = 0; i < 150 && code === undefined; i++) {
      await client.publish("rec.x", { i });
      await new Promise((r) => setTimeout(r, 100));
    }
    if (code === undefined) child.kill("SIGKILL");
    expect(await exited).toBe(1);
    expect(stderr).toMatch(/^herald: STORAGE_ERROR: cannot write cassette \/dev\/full \(ENOSPC: [^\n]*\n$/);
  });
});
