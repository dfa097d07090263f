/**
 * Durability review 2, findings 2 and 3: what the submit socket answers around a fail-stop and a start.
 * - After a storage fail-stop a request gets the outbox's STORAGE_ERROR (what failed, the fix), not
 *   SHUTTING_DOWN "retry in a moment", also while the broker stops.
 * - A starting broker does not answer a request queued before it accepts (a client retrying across a
 *   restart) with SHUTTING_DOWN: the socket is read only once every endpoint is bound and it accepts.
 */
import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Dealer } from "zeromq";
import { Broker } from "../src/broker/broker.js";
import { type SubmitHandler, SubmitServer } from "../src/broker/submit-server.js";
import { HeraldClient } from "../src/client/publisher.js";
import { HeraldError, rejected } from "../src/errors.js";
import { silentLogger } from "../src/util/log.js";
import { decodeReply } from "../src/wire/submit.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "herald-dr2-submit-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function request(i: number): Buffer[] {
  const payload = JSON.stringify({
    messages: [{ id: `m-${i}-${Date.now()}`, topic: "org.test.dr2", body: {} }],
  });
  return [Buffer.from("HERALD1"), Buffer.from(`r${i}`), Buffer.from(payload)];
}

function dealerTo(endpoint: string): Dealer {
  const d = new Dealer({ linger: 0, reconnectInterval: 10 });
  d.connect(endpoint);
  cleanups.push(() => d.close());
  return d;
}

async function replyCodes(d: Dealer): Promise<string[]> {
  const { reply } = decodeReply(await d.receive());
  if ("error" in reply) return [reply.error.code];
  if ("results" in reply) return reply.results.map((r) => (r.ok ? "ok" : r.error.code));
  return ["?"];
}

describe("after a storage fail-stop", () => {
  it("a client on the socket gets STORAGE_ERROR, not SHUTTING_DOWN", async () => {
    const dir = tempDir();
    const submit = `ipc://${join(dir, "run", "submit.sock")}`;
    const fatal: string[] = [];
    const b = new Broker({
      name: "t",
      submitEndpoints: [submit],
      // The first commit is stored, then the step after it fails: fail-stop.
      outbox: { path: join(dir, "outbox.db"), failpoint: "outbox.after_commit=error@1" },
      sinks: [],
      maxBodyBytes: 1 << 20,
      maxBatch: 100,
      onFatal: (err) => fatal.push(err.code),
    });
    cleanups.push(() => b.stop());
    await b.start();
    const client = new HeraldClient({ endpoint: submit, timeoutMs: 2000, retries: 0 });
    cleanups.push(() => client.close());
    await client.publish("org.test.dr2", {});
    expect(fatal).toEqual(["STORAGE_ERROR"]);
    const err = await client.publish("org.test.dr2", {}).then(
      () => undefined,
      (e: unknown) => e as HeraldError,
    );
    expect(err?.code).toBe("STORAGE_ERROR");
    expect(err?.message).toContain("failed during the step after an append commit");
  });
});

const handler: SubmitHandler = {
  maxBatch: 100,
  maxBodyBytes: 1 << 20,
  accept: async (messages) =>
    messages.map((m) => ({ ok: true, id: m.id, seq: 1, accepted_at: "", duplicate: false })),
  command: async () => ({}),
};

describe("SubmitServer.stopAccepting", () => {
  const storage = new HeraldError("STORAGE_ERROR", "the outbox failed: check the disk");

  async function server(): Promise<{ s: SubmitServer; d: Dealer }> {
    const endpoint = `ipc://${join(tempDir(), "submit.sock")}`;
    const s = new SubmitServer(handler, {
      endpoints: [endpoint],
      maxRequestBytes: 1 << 20,
      log: silentLogger,
    });
    cleanups.push(() => s.close());
    await s.start();
    return { s, d: dealerTo(endpoint) };
  }

  it("answers a fail-stop's error even when a stop came first, and keeps it when a stop follows", async () => {
    const { s, d } = await server();
    s.stopAccepting();
    await d.send(request(1));
    expect(await replyCodes(d)).toEqual(["SHUTTING_DOWN"]);
    s.stopAccepting(storage);
    s.stopAccepting();
    s.stopAccepting(rejected("SHUTTING_DOWN", "again"));
    await d.send(request(2));
    expect(await replyCodes(d)).toEqual(["STORAGE_ERROR"]);
  });
});

describe("the IPC submit socket", () => {
  /** The mode of a submit socket bound in `dir` under the usual umask 022. */
  async function socketModeIn(dir: string): Promise<number> {
    const path = join(dir, "submit.sock");
    const old = process.umask(0o022);
    try {
      const s = new SubmitServer(handler, {
        endpoints: [`ipc://${path}`],
        maxRequestBytes: 1 << 20,
        log: silentLogger,
      });
      cleanups.push(() => s.close());
      await s.bind();
    } finally {
      process.umask(old);
    }
    return statSync(path).mode & 0o777;
  }

  it("is read-write for owner and group whatever the umask: the broker's group may connect", async () => {
    expect(await socketModeIn(tempDir())).toBe(0o660);
  });

  it("keeps its umask mode in a directory others may enter: there the socket's mode is the barrier", async () => {
    const dir = tempDir();
    chmodSync(dir, 0o777);
    expect((await socketModeIn(dir)) & 0o077).toBe(0o055);
  });
});

describe("a starting broker", () => {
  it("reads nothing until every endpoint is bound and it accepts: early requests wait, then get answers", async () => {
    const dir = tempDir();
    const first = `ipc://${join(dir, "first.sock")}`;
    let accepted = 0;
    const counting: SubmitHandler = {
      ...handler,
      accept: async (messages) => {
        accepted++;
        return handler.accept(messages, { routingId: Buffer.alloc(0), endpoint: first });
      },
    };
    const s = new SubmitServer(counting, {
      endpoints: [first, `ipc://${join(dir, "second.sock")}`, "tcp://127.0.0.1:*"],
      maxRequestBytes: 1 << 20,
      log: silentLogger,
    });
    cleanups.push(() => s.close());
    // A client retrying across a restart: connected and sending before the broker binds.
    const early = dealerTo(first);
    await early.send(request(1));
    await s.bind();
    // Long enough for libzmq to connect and queue the request (the dealer retries every 10 ms): a server
    // that read the first socket as soon as it was bound has handled it by now.
    await new Promise((r) => setTimeout(r, 300));
    expect(s.counters.requests).toBe(0);
    expect(accepted).toBe(0);
    s.startReading();
    expect(await replyCodes(early)).toEqual(["ok"]);
  });
});
