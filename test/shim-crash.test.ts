import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import * as zmq from "zeromq";
import { HeraldClient } from "../src/client/publisher.js";
import { waitFor } from "./helpers/broker.js";
import { freePorts, type ServeProcess, serveEnv, startServe } from "./helpers/serve.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("the in-broker shim across a crash of herald serve", () => {
  it("serves on a bridged port what it held for it (port not bound yet) when herald serve was killed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herald-shimcrash-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const [hp, lp, port] = await freePorts(3);
    const endpoint = `tcp://127.0.0.1:${port}`;
    // The old app still runs and holds its port: the shim holds the service's herald traffic meanwhile.
    const oldApp = new zmq.Publisher({ linger: 0 });
    await oldApp.bind(endpoint);
    const file = join(dir, "herald.yaml");
    writeFileSync(
      file,
      stringify({
        legacy: {
          enabled: true,
          topicPrefix: "org.example",
          environment: "dev",
          // Held messages go out once the first old subscriber is back (a PUB drops what it sends before):
          // long enough for that on a loaded machine.
          settle: "20s",
          services: { "app.test": { stage: "bridged", endpoints: [endpoint] } },
        },
      }),
    );
    const env = serveEnv(
      dir,
      { herald: hp!, legacy: lp! },
      { HERALD_CONFIG: file, HERALD_LOG_LEVEL: "warn" },
    );
    let serve: ServeProcess = await startServe(env);
    cleanups.push(() => {
      serve.child.kill("SIGKILL");
    });
    const client = new HeraldClient({ endpoint: serve.submit, timeoutMs: 2000 });
    const acks = [];
    for (let i = 0; i < 5; i++) acks.push(await client.publish("org.example.dev.app.built", { i }));
    client.close();
    // Long enough for the shim sink's cursor (written lazily, within 100 ms) to be on disk past them.
    await new Promise((r) => setTimeout(r, 500));
    serve.child.kill("SIGKILL");
    await serve.exited;

    // The old app is gone; its subscribers reconnect to the port, now the shim's.
    oldApp.close();
    const sub = new zmq.Subscriber({ linger: 0 });
    sub.subscribe();
    sub.connect(endpoint);
    cleanups.push(() => sub.close());
    const got: string[] = [];
    void (async () => {
      for await (const [, envelope] of sub) got.push(String(JSON.parse(String(envelope)).msg_id));
    })().catch(() => {});
    serve = await startServe(env);
    const ids = acks.map((a) => a.id);
    const served = await waitFor(() => ids.every((id) => got.some((g) => g.endsWith(id))), 30_000);
    expect(served, `got ${JSON.stringify(got)}; herald serve said:\n${serve.stderr()}`).toBe(true);
  }, 60_000);
});
