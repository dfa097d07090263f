/**
 * What the contract suite and other link tests use to read subscriptions and wait for messages without
 * sleeping for a fixed time: a background Collector per subscription, probes to see a link come up, and
 * markers to see everything sent before them arrive.
 */
import type { Delivery, Subscription, Transport } from "../../src/transport/types.js";
import { createMessage, type Message } from "../../src/wire/message.js";

/** Reads a subscription in the background and lets tests wait for what they expect. */
export class Collector {
  readonly items: Delivery[] = [];
  /**
   * The same deliveries by topic. Waiters re-check on every delivery: scanning all items for a probe made
   * a 50,000-message flood quadratic, and under CPU load the probe after it missed its 20 s deadline.
   */
  private readonly byTopic = new Map<string, Delivery[]>();
  error: unknown;
  /** The subscription's iteration is over (ended, or threw: see `error`). */
  ended = false;
  private readonly wakers = new Set<() => void>();

  constructor(readonly sub: Subscription) {
    void this.run();
  }

  private async run(): Promise<void> {
    try {
      for await (const d of this.sub) {
        this.items.push(d);
        const same = this.byTopic.get(d.message.topic);
        if (same) same.push(d);
        else this.byTopic.set(d.message.topic, [d]);
        this.notify();
      }
    } catch (err) {
      this.error = err;
    }
    this.ended = true;
    this.notify();
  }

  private notify(): void {
    for (const w of this.wakers) w();
  }

  /** Resolve once `pred()` holds; reject after `timeoutMs` saying what was awaited. */
  waitFor(pred: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pred()) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${this.items.length} received)`),
        );
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(check);
      };
      this.wakers.add(check);
    });
  }

  /** Deliveries whose topic is not a probe, i.e. the test's own messages. */
  payload(): Delivery[] {
    return this.items.filter((d) => !d.message.topic.endsWith(".probe"));
  }

  has(topic: string, key: string, value: unknown): boolean {
    return (this.byTopic.get(topic) ?? []).some((d) => d.message.body[key] === value);
  }
}

export function rootWord(): string {
  return `ct${Math.random().toString(36).slice(2, 10)}`;
}

export function msg(topic: string, body: Message["body"], extra: Partial<Message> = {}): Message {
  return { ...createMessage({ topic, body }), ...extra };
}

/**
 * Send probes (`<root>.probe`) until every collector has seen one: the link is then up end to end
 * (ZeroMQ subscriptions propagated, AMQP bindings in place). Probes of earlier calls do not count.
 */
export async function linkUp(
  sender: Transport,
  root: string,
  cols: Collector[],
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const topic = `${root}.probe`;
  const nonce = Math.random().toString(36).slice(2);
  for (let k = 0; Date.now() < deadline; k++) {
    await sender.send([msg(topic, { probe: nonce, k })]);
    const seen = (): boolean => cols.every((c) => c.has(topic, "probe", nonce));
    try {
      await Promise.all(cols.map((c) => c.waitFor(seen, "a probe", 100)));
      return;
    } catch {
      // not yet: send another probe
    }
  }
  throw new Error(`no probe on ${topic} arrived within ${timeoutMs} ms: the link never came up`);
}

/** Send a probe carrying `marker` and wait until every collector has it (everything sent before is in). */
export async function flush(
  sender: Transport,
  root: string,
  cols: Collector[],
  timeoutMs = 20_000,
): Promise<void> {
  const marker = `end-${Math.random().toString(36).slice(2)}`;
  const topic = `${root}.probe`;
  await sender.send([msg(topic, { marker })]);
  await Promise.all(
    cols.map((c) => c.waitFor(() => c.has(topic, "marker", marker), `marker ${marker}`, timeoutMs)),
  );
}
