/**
 * Run a Python test peer (test/peers/*.py) and read its JSON-lines output.
 *
 * ```ts
 * const pub = PythonPeer.start("fedmsg_pub.py", ["--bind", "tcp://127.0.0.1:*", "--count", "5", "--hold"]);
 * const bound = await pub.waitFor((l) => l.event === "bound", "bound endpoints");
 * ...
 * await pub.stop();
 * ```
 *
 * Always `/usr/bin/python3` (Debian's, with python3-zmq and python3-pika), never the `python3` on PATH.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const PYTHON = "/usr/bin/python3";
export const PEERS_DIR = dirname(fileURLToPath(import.meta.url));

export interface PeerLine {
  event?: string;
  [key: string]: unknown;
}

export class PythonPeer {
  readonly lines: PeerLine[] = [];
  stderr = "";
  exitCode: number | null | undefined;
  private readonly wakers = new Set<() => void>();
  private partial = "";

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => this.onData(chunk));
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    child.on("exit", (code) => {
      this.exitCode = code;
      this.notify();
    });
    child.stdin.on("error", () => {}); // EPIPE when the peer already exited
  }

  /** Start `test/peers/<script>` (or an absolute path) with arguments. */
  static start(script: string, args: readonly string[]): PythonPeer {
    const path = script.startsWith("/") ? script : join(PEERS_DIR, script);
    return new PythonPeer(spawn(PYTHON, ["-u", path, ...args], { stdio: ["pipe", "pipe", "pipe"] }));
  }

  private onData(chunk: string): void {
    this.partial += chunk;
    let nl = this.partial.indexOf("\n");
    while (nl >= 0) {
      const line = this.partial.slice(0, nl).trim();
      this.partial = this.partial.slice(nl + 1);
      if (line) this.lines.push(JSON.parse(line) as PeerLine);
      nl = this.partial.indexOf("\n");
    }
    this.notify();
  }

  private notify(): void {
    for (const w of this.wakers) w();
  }

  /** Lines with `event === name`. */
  events(name: string): PeerLine[] {
    return this.lines.filter((l) => l.event === name);
  }

  /** Wait for a line matching `pred`; fails early if the peer exits, and after `timeoutMs`. */
  waitFor(pred: (l: PeerLine) => boolean, what: string, timeoutMs = 20_000): Promise<PeerLine> {
    return this.waitUntil(() => this.lines.find(pred), what, timeoutMs);
  }

  /** Wait until `check()` returns something other than undefined. */
  waitUntil<T>(check: () => T | undefined, what: string, timeoutMs = 20_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(poll);
      };
      const poll = (): void => {
        const v = check();
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (this.exitCode !== undefined) {
          done();
          reject(new Error(`python peer exited (${this.exitCode}) before ${what}; stderr: ${this.stderr}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; stderr: ${this.stderr}`));
      }, timeoutMs);
      this.wakers.add(poll);
      poll();
    });
  }

  write(line: string): void {
    this.child.stdin.write(line.endsWith("\n") ? line : `${line}\n`);
  }

  /** Close stdin (ends --raw-stdin input and --hold). */
  endInput(): void {
    this.child.stdin.end();
  }

  /** Resolve with the exit code once the peer has exited. */
  exited(timeoutMs = 20_000): Promise<number | null> {
    return this.waitUntil(() => (this.exitCode === undefined ? undefined : this.exitCode), "exit", timeoutMs);
  }

  /** End input, then SIGTERM if it has not exited within a bounded time; always resolves. */
  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.endInput();
    try {
      await this.exited(3_000);
    } catch {
      this.child.kill("SIGTERM");
      await this.exited(5_000).catch(() => this.child.kill("SIGKILL"));
    }
  }
}
