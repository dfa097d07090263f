import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { replaySummary } from "../src/cli/record.js";
import { encodeEnvelope } from "../src/wire/herald.js";
import { createMessage } from "../src/wire/message.js";
import { startTestBroker, type TestBroker } from "./helpers/broker.js";
import { CLI } from "./helpers/serve.js";

const brokers: TestBroker[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const b of brokers.splice(0)) await b.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function cassette(n: number): string {
  const dir = mkdtempSync(join(tmpdir(), "herald-replay-dup-"));
  dirs.push(dir);
  const file = join(dir, "c.jsonl");
  const lines = Array.from({ length: n }, (_, i) => {
    const m = createMessage({ topic: "dup.t", body: { i } });
    const raw = encodeEnvelope(m).toString("base64");
    return JSON.stringify({
      v: 1,
      at: new Date().toISOString(),
      format: "herald",
      via: "test",
      topic: m.topic,
      raw,
    });
  });
  writeFileSync(file, `${lines.join("\n")}\n`);
  return file;
}

describe("herald replay of ids the broker already has", () => {
  const run = promisify(execFile);
  const env = { ...process.env, HERALD_CONFIG: "" };

  it("counts duplicates apart, says nothing was published again, and exits 0", async () => {
    const file = cassette(3);
    const b = await startTestBroker();
    brokers.push(b);
    const first = await run(process.execPath, [CLI, "replay", file, "--endpoint", b.submit], { env });
    expect(first.stdout.trim()).toBe("replayed 3 messages");
    const again = await run(process.execPath, [CLI, "replay", file, "--endpoint", b.submit], { env });
    expect(again.stdout.trim()).toBe(
      "replayed 0 new, 3 already stored (duplicate ids: the broker published them before; use --new-ids to send copies)",
    );
    expect(b.broker.status().outbox.headSeq).toBe(3);
    const copies = await run(process.execPath, [CLI, "replay", file, "--new-ids", "--endpoint", b.submit], {
      env,
    });
    expect(copies.stdout.trim()).toBe("replayed 3 messages");
    expect(b.broker.status().outbox.headSeq).toBe(6);
  });

  it("summarises a mix of new, duplicate and refused messages", () => {
    expect(replaySummary(2, 1, 0)).toBe(
      "replayed 2 new, 1 already stored (duplicate ids: the broker published them before; use --new-ids to send copies)",
    );
    expect(replaySummary(1, 1, 2)).toMatch(/^replayed 1 new, 1 already stored .*, 2 refused$/);
    expect(replaySummary(4, 0, 1)).toBe("replayed 4 messages, 1 refused");
  });
});
