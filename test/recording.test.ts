import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { Recorder, readCassette } from "../src/testing/recording.js";
import { encodeEnvelope } from "../src/wire/herald.js";
import { linkUp, startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { CLI } from "./helpers/serve.js";

const brokers: TestBroker[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("record and replay", () => {
  it("records the exact bytes from both sockets and replays them into another broker", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-rec-"));
    dirs.push(dir);
    const cassette = join(dir, "traffic.jsonl");
    const a = await startTestBroker();
    brokers.push(a);
    const sub = a.subscriber(["herald", "legacy"], ["rec.#", "probe.#"]);
    const rec = new Recorder(cassette);
    const seen: string[] = [];
    const reading = (async () => {
      for await (const m of sub) {
        seen.push(m.message.id);
        if (m.message.topic.startsWith("rec.")) rec.write(m);
      }
    })();
    const client = a.client();
    await linkUp(client, [seen]);
    const acks = await client.publishBatch(
      Array.from({ length: 50 }, (_, i) => ({
        topic: "rec.test",
        body: { i, text: "héllo ✓" },
        headers: { n: i },
      })),
    );
    expect(await waitFor(() => acks.every((x) => seen.includes(x.id)))).toBe(true);
    await sub.close();
    await reading;
    await rec.close();
    expect(rec.count).toBe(50);

    const lines = readFileSync(cassette, "utf8").trim().split("\n");
    expect(lines).toHaveLength(50);
    const replayed = [];
    for await (const { entry, message } of readCassette(cassette)) {
      // The recorded bytes are what the socket carried: herald envelopes re-encode to the same bytes.
      if (entry.format === "herald")
        expect(encodeEnvelope(message).equals(Buffer.from(entry.raw, "base64"))).toBe(true);
      replayed.push(message);
    }
    expect(replayed.map((m) => m.body["i"])).toEqual(acks.map((_, i) => i));

    const b = await startTestBroker();
    brokers.push(b);
    // Asynchronously: the broker under test runs in this process and must keep answering.
    const run = promisify(execFile);
    const env = { ...process.env, HERALD_CONFIG: "" };
    const r = await run(process.execPath, [CLI, "replay", cassette, "--endpoint", b.submit], { env });
    expect(r.stdout).toMatch(/replayed 50 messages/);
    expect(b.broker.status().outbox.headSeq).toBe(50);
    // Same ids again: the broker's dedup window recognises a second replay, and the summary says so.
    const again = await run(process.execPath, [CLI, "replay", cassette, "--endpoint", b.submit], { env });
    expect(again.stdout).toMatch(/replayed 0 new, 50 already stored \(duplicate ids/);
    expect(b.broker.status().outbox.headSeq).toBe(50);
  });
});
