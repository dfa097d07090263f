import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HeraldClient } from "../src/client/publisher.js";
import { Subscriber } from "../src/client/subscriber.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { collectIds, linkUp, waitFor } from "./helpers/broker.js";
import {
  freePorts,
  PY,
  ROOT,
  runJsonLines,
  type ServeProcess,
  serveEnv,
  startServe,
} from "./helpers/serve.js";

// The talk's demo of what the old design failed: short-lived processes publish one message each and exit.
// With fedmsg each would bind its own socket and lose its message to the slow joiner; here each hands the
// message to the broker and exits only after the acknowledgement, so every message reaches every subscriber.
const TRIALS = 20;
const PROCS = 64;

describe("short-lived publishers (slow joiner)", () => {
  let dir: string;
  let serve: ServeProcess;
  let ports: number[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "herald-sj-"));
    ports = await freePorts(2);
    serve = await startServe(serveEnv(dir, { herald: ports[0]!, legacy: ports[1]! }));
  });
  afterAll(async () => {
    serve?.child.kill("SIGTERM");
    await serve?.exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it(`all ${PROCS} messages from ${PROCS} processes (Python and Node) arrive in each of ${TRIALS} trials on both sockets`, {
    timeout: 600_000,
  }, async () => {
    const sub = (format: "herald" | "legacy", port: number): Subscriber =>
      new Subscriber({
        sources: [
          new ZmqSubscribeTransport({ name: format, endpoints: [`tcp://127.0.0.1:${port}`], format }),
        ],
        patterns: ["trial.#", "probe.#"],
      });
    const herald = sub("herald", ports[0]!);
    const legacy = sub("legacy", ports[1]!);
    const h = collectIds(herald);
    const l = collectIds(legacy);
    const probe = new HeraldClient({ endpoint: serve.submit });
    await linkUp(probe, [h.ids, l.ids]);
    await probe.close();
    const failures: string[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const jobs = Array.from({ length: PROCS }, (_, p) =>
        p % 2 === 0
          ? runJsonLines(PY, [
              join(ROOT, "scripts", "herald_publish.py"),
              "--endpoint",
              serve.submit,
              `trial.t${t}.py`,
              `{"p": ${p}}`,
            ])
          : runJsonLines(process.execPath, [
              join(ROOT, "test", "peers", "node_publish.mjs"),
              serve.submit,
              `trial.t${t}.node`,
              "1",
            ]),
      );
      const out = (await Promise.all(jobs)).flat();
      const ids = out.map((o) => o["id"] ?? o["ack"]).filter((x): x is string => typeof x === "string");
      expect(ids).toHaveLength(PROCS);
      const all = await waitFor(() => ids.every((id) => h.ids.includes(id) && l.ids.includes(id)), 15_000);
      if (!all)
        failures.push(
          `trial ${t}: herald ${ids.filter((i) => h.ids.includes(i)).length}, legacy ${ids.filter((i) => l.ids.includes(i)).length}`,
        );
    }
    await herald.close();
    await legacy.close();
    expect(failures).toEqual([]);
  });
});
