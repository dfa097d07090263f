import type { Options } from "amqplib";
import type { AmqpPublish } from "../wire/fedora-messaging.js";

/**
 * One `send` call. A counter per batch instead of a promise per message: the dispatcher hands over
 * hundreds of messages at a time and only needs to know when the last one settled.
 */
export interface Batch {
  left: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** One message's publish, encoded. */
export interface EncodedPublish {
  id: string;
  pub: AmqpPublish;
}

/**
 * One message until the broker confirms it. Resent on nack, timeout or channel loss; dropped only when its
 * send fails for good (refused by the server, or close).
 */
export interface Entry {
  id: string;
  order: number;
  pub: AmqpPublish;
  /** Built once: a fresh options object per publish (and per republish) is garbage on the hot path. */
  options: Options.Publish;
  /** Batches waiting for this message (a retried batch shares the first copy's outcome). */
  batches: Batch[];
  /** Bumped on every publish: confirms for older attempts are ignored. */
  attempt: number;
  /** Channel generation it is in flight on, undefined when not in flight. */
  inflightOn: number | undefined;
  deadline: number;
  nacks: number;
  returned: boolean;
  retryTimer: NodeJS.Timeout | undefined;
}

export function newEntry(id: string, pub: AmqpPublish, order: number): Entry {
  return {
    id,
    order,
    pub,
    options: { ...pub.properties, mandatory: true },
    batches: [],
    attempt: 0,
    inflightOn: undefined,
    deadline: 0,
    nacks: 0,
    returned: false,
    retryTimer: undefined,
  };
}
