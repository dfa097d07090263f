/** herald/testing's startTestBroker, used as an app's own test would (through the package's testing entry). */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MessageRejectedError } from "../src/errors.js";
import { startTestBroker, type TestBroker } from "../src/testing/index.js";

let tb: TestBroker | undefined;
afterEach(async () => {
  await tb?.stop();
  tb = undefined;
});

describe("startTestBroker", () => {
  it("acknowledges durably, refuses as production does, and a subscriber it returns gets what follows at once", async () => {
    tb = await startTestBroker();
    // Both formats: the broker has seen both subscriptions when this resolves, so nothing is dropped below.
    const sub = await tb.subscribe(["org.example.#"], { formats: ["herald", "legacy"] });
    // Resolved only once both PUB sockets had taken the subscription (not merely after a connect).
    const subscribes = (name: string) =>
      tb!.broker.status().sinks.find((k) => k.name === name)?.health.counters["subscribes"] ?? 0;
    expect(subscribes("herald")).toBeGreaterThanOrEqual(1);
    expect(subscribes("legacy")).toBeGreaterThanOrEqual(1);
    const client = tb.client();
    const ack = await client.publish("org.example.build.done", { build: 42 });
    expect(ack.seq).toBe(1);
    expect(tb.broker.status().outbox.headSeq).toBe(1);
    const refused = await client.publish("org.example.*", {}).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "BAD_TOPIC" });
    const it = sub[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.value?.message).toMatchObject({ id: ack.id, body: { build: 42 } });
    // The legacy copy of the same id is deduplicated by the dual-format subscriber.
    expect(sub.stats()).toMatchObject({ delivered: 1 });
  });

  it("checks body schemas when given a directory, and stop() removes what it made", async () => {
    const schemas = join(import.meta.dirname, "fixtures", "schemas");
    tb = await startTestBroker({ schemas: { dir: schemas, strict: false } });
    const client = tb.client();
    const bad = await client
      .publish("org.example.koji.build", { build: "x" }, { schema: "koji.build" })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(MessageRejectedError);
    expect(String((bad as Error).message)).toMatch(/body\.build must be integer/);
    await client.publish("org.example.koji.build", { build: 1 }, { schema: "koji.build" });
    const dir = tb.submit.slice("ipc://".length).replace(/\/run\/submit\.sock$/, "");
    expect(existsSync(dir)).toBe(true);
    await tb.stop();
    tb = undefined;
    expect(existsSync(dir)).toBe(false);
  });
});
