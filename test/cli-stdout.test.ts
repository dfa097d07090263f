import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { descriptorWriter } from "../src/cli/stdout.js";
import { ROOT } from "./helpers/serve.js";

const tmp = mkdtempSync(join(tmpdir(), "herald-stdout-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A stream double that records what was written to it. */
function recordingStream(): { stream: () => NodeJS.WritableStream; written: string[] } {
  const written: string[] = [];
  const stream = { write: (b: Uint8Array) => written.push(Buffer.from(b).toString()) > 0, on: () => stream };
  return { stream: () => stream as unknown as NodeJS.WritableStream, written };
}

function eagain(): Error {
  return Object.assign(new Error("EAGAIN: resource temporarily unavailable, write"), { code: "EAGAIN" });
}

describe("the CLI's standard output (cli/stdout.ts)", () => {
  it("writes every byte to the descriptor when it takes them a few at a time", () => {
    const got: number[] = [];
    const { stream, written } = recordingStream();
    const write = descriptorWriter(7, stream, (fd, buf, offset) => {
      expect(fd).toBe(7);
      const n = Math.min(3, buf.length - offset);
      got.push(...buf.subarray(offset, offset + n));
      return n;
    });
    write("héllo\n");
    write("wörld\n");
    expect(Buffer.from(got).toString()).toBe("héllo\nwörld\n");
    expect(written).toEqual([]);
  });

  it("hands the rest of a line, and every later line, to the stream once the descriptor refuses", () => {
    const direct: string[] = [];
    let calls = 0;
    const { stream, written } = recordingStream();
    const write = descriptorWriter(1, stream, (_fd, buf, offset) => {
      calls++;
      if (calls === 3) throw eagain();
      direct.push(Buffer.from(buf.subarray(offset, offset + 4)).toString());
      return Math.min(4, buf.length - offset);
    });
    write("one\n");
    write("two two\n");
    write("three\n");
    expect(calls).toBe(3);
    expect(direct).toEqual(["one\n", "two "]);
    expect(written).toEqual(["two\n", "three\n"]);
  });

  it("stops writing once the reader is gone (EPIPE) and says so once", () => {
    let calls = 0;
    let closed = 0;
    const { stream, written } = recordingStream();
    const write = descriptorWriter(
      1,
      stream,
      () => {
        calls++;
        throw Object.assign(new Error("EPIPE: broken pipe, write"), { code: "EPIPE" });
      },
      () => closed++,
    );
    write("one\n");
    write("two\n");
    expect([calls, closed, written.length]).toEqual([1, 1, 0]);
  });

  it("ends quietly with status 141, like a SIGPIPE, when piped into head", async () => {
    const child = join(tmp, "many.mjs");
    const stdoutModule = pathToFileURL(join(ROOT, "dist", "cli", "stdout.js")).href;
    writeFileSync(
      child,
      `import { out } from ${JSON.stringify(stdoutModule)};\n` +
        `for (let i = 0; i < 200000; i++) out("line " + i);\n` +
        `process.stderr.write("not reached\\n");\n`,
    );
    const c = spawn(
      "bash",
      ["-c", `"${process.execPath}" "${child}" | head -1; echo "status \${PIPESTATUS[0]}" >&2`],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => {
      stdout += String(d);
    });
    c.stderr.on("data", (d) => {
      stderr += String(d);
    });
    await new Promise((r) => c.on("close", r));
    expect(stdout).toBe("line 0\n");
    expect(stderr).toBe("status 141\n");
  });

  it("delivers every line, in order, through a full non-blocking pipe", async () => {
    // A parent that set O_NONBLOCK on the pipe it gave us (python3 here) makes a full pipe return EAGAIN.
    const child = join(tmp, "lines.mjs");
    const stdoutModule = pathToFileURL(join(ROOT, "dist", "cli", "stdout.js")).href;
    writeFileSync(
      child,
      `import { out } from ${JSON.stringify(stdoutModule)};\n` +
        `for (let i = 0; i < 20000; i++) out("line " + i + " " + "x".repeat(100));\n`,
    );
    const nonblocking =
      "import fcntl, os, sys\n" +
      "fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_NONBLOCK)\n" +
      "os.execv(sys.argv[1], sys.argv[1:])\n";
    const c = spawn("/usr/bin/python3", ["-c", nonblocking, process.execPath, child], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    c.stderr.on("data", (d) => {
      stderr += String(d);
    });
    c.stdout.pause(); // the pipe fills (64 KiB) long before the child's 2 MB are written
    await new Promise((r) => setTimeout(r, 300));
    const chunks: Buffer[] = [];
    c.stdout.on("data", (d: Buffer) => chunks.push(d));
    c.stdout.resume();
    const code = await new Promise((r) => c.on("close", r));
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const lines = Buffer.concat(chunks).toString().split("\n");
    expect(lines.pop()).toBe("");
    expect(lines).toHaveLength(20000);
    expect(lines.every((l, i) => l === `line ${i} ${"x".repeat(100)}`)).toBe(true);
  });
});
