import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startTestBroker, type TestBroker, waitFor } from "./helpers/broker.js";
import { PY, ROOT, runJsonLines } from "./helpers/serve.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

describe("the Python examples users copy", () => {
  it("herald_publish.py publishes with an acknowledgement; a refused message is a clear error", async () => {
    tb = await startTestBroker();
    const [ack] = await runJsonLines(PY, [
      join(ROOT, "scripts", "herald_publish.py"),
      "--endpoint",
      tb.submit,
      "py.example",
      '{"k": 1}',
    ]);
    expect(ack).toMatchObject({ ok: true, duplicate: false });
    const refused = await runJsonLines(PY, [
      join(ROOT, "scripts", "herald_publish.py"),
      "--endpoint",
      tb.submit,
      "py.*",
      "{}",
    ]).catch((e: Error) => e.message);
    expect(String(refused)).toMatch(/BAD_TOPIC/);
    // Python's json reads NaN; the script must refuse it itself (the broker refused the whole request).
    const nan = await runJsonLines(PY, [
      join(ROOT, "scripts", "herald_publish.py"),
      "--endpoint",
      tb.submit,
      "py.example",
      '{"k": NaN}',
    ]).catch((e: Error) => e.message);
    expect(String(nan)).toMatch(/INVALID: .*NaN and Infinity are not JSON/);
  });

  it("herald_tail.py (a legacy consumer switched to herald's format) prints herald messages", async () => {
    tb = await startTestBroker();
    const child = spawn(
      PY,
      [join(ROOT, "scripts", "herald_tail.py"), "--endpoint", tb.pub.herald, "--count", "1", "py."],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    const closed = new Promise((r) => child.on("close", r));
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const client = tb.client();
    let id = "";
    for (let i = 0; i < 100 && out === ""; i++) {
      id = (await client.publish("py.tail", { n: i })).id;
      await waitFor(() => out !== "", 100);
    }
    expect(out.trim()).toMatch(/^py\.tail [0-9a-f-]{36} \{"n": \d+\}$/);
    expect(id).not.toBe("");
    expect(await closed).toBe(0);
  });
});
