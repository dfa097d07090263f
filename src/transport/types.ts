import type { Message } from "../wire/message.js";

/**
 * The one small transport interface. ZeroMQ (herald and legacy formats), AMQP, herald-to-herald
 * forwarding and the in-memory bus are siblings behind it. ZeroMQ, AMQP and memory pass one shared
 * contract suite (test/contract/transport-contract.ts), which needs a sender and a receiver on one link;
 * forwarding only sends (its receive() throws UNSUPPORTED, the far end is another broker's submit
 * socket), so the suite does not run it: test/forward.test.ts covers it. Policy (outbox, retries,
 * validation, signing) lives above transports, in the broker and client, once.
 */
export interface Transport {
  /** Instance name from configuration, e.g. "zmq-legacy" or "amqp-hub". */
  readonly name: string;
  /** "memory" | "zeromq" | "amqp" | "forward". */
  readonly kind: string;
  /** Bind, connect or declare. Idempotent. May resolve before a remote peer is reachable (see health()). */
  open(): Promise<void>;
  /**
   * Hand over messages in order. Resolves once the transport has taken responsibility for every one of
   * them: written to the socket (ZeroMQ), confirmed (AMQP), acknowledged (forwarding), delivered to the
   * bus (memory). Rejects with a HeraldError; the caller (the outbox dispatcher) retries the whole batch,
   * so transports must tolerate resends of messages they already took (duplicates are allowed, loss is not).
   * A message the transport can never take (TOO_LARGE, unencodable) rejects with a MessageRejectedError,
   * the one error the dispatcher passes a message over for; anything else stalls the sink on it.
   */
  send(batch: readonly Message[]): Promise<void>;
  /**
   * Messages arriving on this transport whose topic matches any of the AMQP-style patterns
   * (`*` one word, `#` zero or more). Throws UNSUPPORTED for send-only transports.
   */
  receive(options: ReceiveOptions): Subscription;
  health(): TransportHealth;
  /** Stop; pending sends reject with CLOSED. Idempotent. */
  close(): Promise<void>;
}

export interface ReceiveOptions {
  patterns: readonly string[];
  /** Sources that acknowledge (AMQP) do so when `Delivery.ack()` is called; others ignore it. */
  manualAck?: boolean;
}

export interface Delivery {
  message: Message;
  /** Where it came from, e.g. "tcp://127.0.0.1:9940" or "amqp:queue-name". */
  via: string;
  /** Wire format it was read in. */
  format: WireFormat;
  /** The exact bytes received (envelope frame or AMQP body), for verification and recording. */
  raw?: Buffer;
  ack(): Promise<void>;
  /** Reject: AMQP dead-letters or drops without requeue; others ignore it. */
  nack(): Promise<void>;
}

export type WireFormat = "herald" | "legacy" | "fedora-messaging";

export interface Subscription extends AsyncIterable<Delivery> {
  close(): Promise<void>;
}

export type TransportState = "starting" | "up" | "down" | "blocked" | "closed";

export interface TransportHealth {
  state: TransportState;
  sent: number;
  received: number;
  /** Transport-specific counters: returned, nacked, reconnects, dropped... */
  counters: Record<string, number>;
  lastError?: string;
  lastErrorAt?: string;
}

export function initialHealth(): TransportHealth {
  return { state: "starting", sent: 0, received: 0, counters: {} };
}

export function noteError(h: TransportHealth, err: unknown): void {
  h.lastError = err instanceof Error ? err.message : String(err);
  h.lastErrorAt = new Date().toISOString();
}

export function bump(h: TransportHealth, counter: string, by = 1): void {
  h.counters[counter] = (h.counters[counter] ?? 0) + by;
}
