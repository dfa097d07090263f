import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { identityFromSeed } from "../src/security/keys.js";
import { signMessage } from "../src/security/sign.js";
import { trustKey } from "../src/security/trust.js";
import { HERALD_CONTENT_TYPE } from "../src/wire/fedora-messaging.js";
import { encodeEnvelope } from "../src/wire/herald.js";
import { createMessage, type Message } from "../src/wire/message.js";
import { Admin, uniq } from "./amqp-helpers.js";
import { CLI } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("herald tail --source --verify", () => {
  it("drops unsigned messages from an AMQP source and prints verified ones with their signer", async () => {
    const admin = await Admin.open();
    cleanups.push(() => admin.close());
    const exchange = await admin.exchange(uniq("herald-tailv-x"));
    const dir = mkdtempSync(join(tmpdir(), "herald-tailv-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const alice = identityFromSeed("alice", Buffer.alloc(32, 7));
    const trustDir = join(dir, "trust");
    trustKey(alice, trustDir);
    const source = { name: "src", type: "amqp", exchange, bindings: ["tv.#"] };
    const tail = spawn(
      process.execPath,
      [CLI, "tail", "--source", "src", "--verify", "--count", "1", "tv.#"],
      {
        env: {
          ...process.env,
          HERALD_CONFIG: "",
          HERALD_PATHS__RUNTIME_DIR: join(dir, "run"),
          HERALD_PATHS__DATA_DIR: join(dir, "data"),
          HERALD_SECURITY__TRUST_DIR: trustDir,
          HERALD_SOURCES: JSON.stringify([source]),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    cleanups.push(() => void tail.kill("SIGKILL"));
    let out = "";
    let err = "";
    tail.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    tail.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    let ended = false;
    const exited = new Promise<number | null>((r) => tail.on("exit", r));
    void exited.then(() => {
      ended = true;
    });
    const send = (m: Message): void => {
      admin.ch.publish(exchange, m.topic, encodeEnvelope(m), {
        contentType: HERALD_CONTENT_TYPE,
        messageId: m.id,
      });
    };
    // The tail's queue is bound asynchronously: send an unsigned message, then a signed one, until it
    // has printed one line and exited. Unsigned ones come first, so a tail that does not verify prints one.
    for (let i = 0; i < 100 && !ended; i++) {
      send(createMessage({ topic: "tv.forged", body: { i } }));
      send(signMessage(createMessage({ topic: "tv.signed", body: { i } }), alice));
      await new Promise((r) => setTimeout(r, 150));
    }
    expect(await exited).toBe(0);
    expect(out).toMatch(/^\S+ tv\.signed [0-9a-f-]{36} \[herald\] signer=alice \{"i":\d+\}\n$/);
    expect(err).toMatch(/herald tail: dropped [0-9a-f-]{36} tv\.forged: UNSIGNED: /);
  });
});
