import { afterEach, describe, expect, it } from "vitest";
import * as zmq from "zeromq";
import { type Gap, Subscriber } from "../src/client/subscriber.js";
import { ZmqSubscribeTransport } from "../src/transport/zeromq-sub.js";
import { waitFor } from "./helpers/broker.js";

// A fedmsg app's socket numbers its messages with `i` (1, 2, 3, ...; from 1 again after a restart): read
// from such an endpoint, a missing `i` is a gap the subscriber must report, as `seq` is on herald sockets.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const envelope = (i: number) =>
  JSON.stringify({
    i,
    msg: { i },
    msg_id: `2026-${i}-x`,
    timestamp: 1_700_000_000,
    topic: "org.example.prod.app.x",
    username: "u",
  });

async function fedmsgApp(): Promise<{ pub: zmq.Publisher; endpoint: string }> {
  const pub = new zmq.Publisher({ linger: 0 });
  await pub.bind("tcp://127.0.0.1:*");
  cleanups.push(() => pub.close());
  return { pub, endpoint: pub.lastEndpoint! };
}

function reader(endpoint: string, counts: boolean) {
  const gaps: Gap[] = [];
  const restarts: string[] = [];
  const sub = new Subscriber({
    sources: [
      new ZmqSubscribeTransport({
        name: "legacy",
        endpoints: [endpoint],
        format: "legacy",
        legacySequence: () => counts,
      }),
    ],
    ownsSources: true,
    onGap: (g) => gaps.push(g),
    onRestart: (s) => restarts.push(s),
  });
  cleanups.push(() => sub.close());
  return { sub, gaps, restarts };
}

describe("fedmsg's i as a sequence", () => {
  it("reports a missing i as a gap and a restarted app (i back down) as a restart", async () => {
    const { pub, endpoint } = await fedmsgApp();
    const counted = reader(endpoint, true);
    const plain = reader(endpoint, false);
    // Past the slow joiner: send i=1 until both readers have it.
    for (
      let k = 0;
      k < 100 && (counted.sub.stats().received === 0 || plain.sub.stats().received === 0);
      k++
    ) {
      await pub.send(["org.example.prod.app.x", envelope(1)]);
      await waitFor(() => counted.sub.stats().received > 0 && plain.sub.stats().received > 0, 50);
    }
    for (const i of [2, 5, 6, 3]) await pub.send(["org.example.prod.app.x", envelope(i)]);
    expect(
      await waitFor(() => counted.sub.stats().received >= 5 && plain.sub.stats().received >= 5, 5000),
    ).toBe(true);
    const via = `legacy:${endpoint}`;
    expect(counted.gaps).toEqual([
      { stream: via, via: endpoint, expected: 3, received: 5, missed: 2 },
      { stream: via, via: endpoint, expected: 1, received: 3, missed: 2 },
    ]);
    expect(counted.restarts).toEqual([via]);
    // Where i is not the socket's own counter (herald's legacy gateway, fedmsg-relay): no claims.
    expect(plain.gaps).toEqual([]);
    expect(plain.restarts).toEqual([]);
  });
});
