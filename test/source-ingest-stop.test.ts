import { afterEach, describe, expect, it, vi } from "vitest";
import type { Submitter } from "../src/broker/local-submit.js";
import { SourceIngest } from "../src/broker/source-ingest.js";
import { type HeraldError, rejected } from "../src/errors.js";
import type { Transport } from "../src/transport/types.js";
import { silentLogger } from "../src/util/log.js";
import type { Message } from "../src/wire/message.js";
import { fakeSource } from "./helpers/fake-source.js";

// SourceIngest between a source and a broker that cannot take messages now (OUTBOX_FULL). Timers are fake:
// a backoff sleep ends only when a test advances the clock, so "stop() waited for it" shows as a stop()
// that never resolves, whatever the machine's speed.

afterEach(() => {
  vi.useRealTimers();
});

/** fakeSource, pushing bare messages by id. */
function idSource(): { source: Transport; push(id: string): void; acked: string[] } {
  const f = fakeSource();
  return {
    source: f.source,
    push: (id) => f.push({ id, topic: "org.example.t" } as Message),
    acked: f.acked,
  };
}

/** Let every pending promise and I/O callback run (fake timers leave setImmediate real). */
async function settle(turns = 20): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

type Outcome = Awaited<ReturnType<Submitter["submit"]>>[number];

describe("SourceIngest against a full outbox", () => {
  it("stop() cuts the backoff sleep short instead of waiting it out", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { source, push } = idSource();
    let calls = 0;
    const full: Submitter = {
      submit: async (ms) => {
        calls++;
        return ms.map(() => rejected("OUTBOX_FULL", "full") as HeraldError);
      },
    };
    const ingest = new SourceIngest(source, ["#"], full, silentLogger);
    await ingest.start();
    push("m0");
    await settle();
    expect(calls).toBe(1); // submitted once, now sleeping its backoff (the fake clock never moves)
    let stopped = false;
    void ingest.stop().then(() => {
      stopped = true;
    });
    await settle();
    expect(stopped).toBe(true);
    expect(calls).toBe(1);
  });

  it("tries put-back messages again before those that arrived meanwhile, in their order", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { source, push, acked } = idSource();
    const batches: string[][] = [];
    const client: Submitter = {
      submit: async (ms) => {
        batches.push(ms.map((m) => m.id));
        if (batches.length > 1)
          return ms.map((m): Outcome => ({ id: m.id, seq: 1, acceptedAt: "", duplicate: false }) as Outcome);
        // The first batch is refused for now; two more messages arrive while it was being submitted.
        push("m3");
        push("m4");
        await settle(2);
        return ms.map(() => rejected("OUTBOX_FULL", "full") as HeraldError);
      },
    };
    const ingest = new SourceIngest(source, ["#"], client, silentLogger);
    await ingest.start();
    for (const id of ["m0", "m1", "m2"]) push(id);
    await settle();
    const refused = batches[0]!; // m0 and whatever else the loop had read by then
    expect(refused[0]).toBe("m0");
    await vi.advanceTimersByTimeAsync(20_000); // past any backoff
    await settle();
    expect(batches[1]!.slice(0, refused.length)).toEqual(refused);
    expect(acked).toEqual(["m0", "m1", "m2", "m3", "m4"]); // first-delivery order
    await ingest.stop();
  });
});
