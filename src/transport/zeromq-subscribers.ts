import { AsyncQueue } from "../util/queue.js";

/** One subscribe or unsubscribe seen on an XPUB socket (unsubscribes also arrive when a subscriber leaves). */
export interface SubscriptionEvent {
  subscribe: boolean;
  /** The byte prefix the subscriber asked for, decoded as UTF-8; "" = everything. */
  prefix: string;
  /** Date.now() when seen. */
  at: number;
}

/** A connection accepted or lost on a bound socket. libzmq reports only our local address, not who. */
export interface PeerEvent {
  type: "accept" | "disconnect";
  address: string;
  at: number;
}

export interface SubscriberInfo {
  /** Connections accepted minus connections lost. */
  connected: number;
  /** Last accept, disconnect or (un)subscription seen. */
  lastSeenAt?: number;
  /** Prefixes with at least one live subscription (xpub only; empty on a plain PUB). */
  prefixes: string[];
}

/**
 * Aggregate view of who listens on a PUB/XPUB socket. It is evidence, not an exact census: libzmq
 * reports subscriptions without saying which connection sent them, and when a connection goes away it
 * sends one unsubscribe per prefix even if that subscriber had subscribed twice. Counts are floored at
 * zero and all prefixes are forgotten when the last connection is gone.
 */
export class SubscriberTracker {
  private connected = 0;
  private lastSeenAt: number | undefined;
  private readonly prefixes = new Map<string, number>();
  private readonly subListeners = new Set<(e: SubscriptionEvent) => void>();
  private readonly peerListeners = new Set<(e: PeerEvent) => void>();
  private readonly streams = new Set<AsyncQueue<SubscriptionEvent>>();

  peer(e: PeerEvent): void {
    this.lastSeenAt = e.at;
    if (e.type === "accept") this.connected++;
    else this.connected = Math.max(0, this.connected - 1);
    if (this.connected === 0) this.prefixes.clear();
    for (const l of this.peerListeners) safeCall(l, e);
  }

  subscription(e: SubscriptionEvent): void {
    this.lastSeenAt = e.at;
    const n = (this.prefixes.get(e.prefix) ?? 0) + (e.subscribe ? 1 : -1);
    if (n > 0) this.prefixes.set(e.prefix, n);
    else this.prefixes.delete(e.prefix);
    for (const l of this.subListeners) safeCall(l, e);
  }

  info(): SubscriberInfo {
    const out: SubscriberInfo = { connected: this.connected, prefixes: [...this.prefixes.keys()].sort() };
    if (this.lastSeenAt !== undefined) out.lastSeenAt = this.lastSeenAt;
    return out;
  }

  onSubscription(l: (e: SubscriptionEvent) => void): () => void {
    this.subListeners.add(l);
    return () => this.subListeners.delete(l);
  }

  onPeer(l: (e: PeerEvent) => void): () => void {
    this.peerListeners.add(l);
    return () => this.peerListeners.delete(l);
  }

  stream(limit: number, onDrop: () => void): AsyncIterable<SubscriptionEvent> & { close(): void } {
    const q = new AsyncQueue<SubscriptionEvent>(limit);
    const off = this.onSubscription((e) => {
      if (!q.push(e)) onDrop();
    });
    this.streams.add(q);
    const close = (): void => {
      off();
      this.streams.delete(q);
      q.close();
    };
    return { close, [Symbol.asyncIterator]: () => q[Symbol.asyncIterator]() };
  }

  close(): void {
    for (const q of this.streams) q.close();
    this.streams.clear();
    this.subListeners.clear();
    this.peerListeners.clear();
  }
}

function safeCall<E>(l: (e: E) => void, e: E): void {
  try {
    l(e);
  } catch {
    // A listener's bug must not stop the socket's event loop; the listener owns its errors.
  }
}
