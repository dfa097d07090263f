import { type Ack, type HeraldClient, toOutcome } from "../client/publisher.js";
import { type HeraldError, rejected, toHeraldError } from "../errors.js";
import type { Message } from "../wire/message.js";
import type { SubmitResult } from "../wire/submit.js";
import type { Broker, SubmitPeer } from "./broker.js";
import { storedMessage } from "./submit-server.js";

/** What takes built messages into a broker: a HeraldClient, or a LocalSubmitter inside `herald serve`. */
export type Submitter = Pick<HeraldClient, "submit">;

/**
 * The peer of in-process submits. Not a tcp:// endpoint, so no CURVE identity: admission judges the
 * message's own signature, as for a client on the IPC socket (which file permissions guard).
 */
export const LOCAL_PEER: SubmitPeer = { routingId: Buffer.alloc(0), endpoint: "local:in-process" };

/**
 * The peer of source ingest (`sources[].ingest`): in-process too, but what it submits has waited in a
 * RabbitMQ queue, for as long as this broker was down, so admission sets no age limit on it (security.ts).
 */
export const SOURCE_PEER: SubmitPeer = { routingId: Buffer.alloc(0), endpoint: "local:source" };

/**
 * Submits from inside the broker's process (the in-broker shim, source ingest) straight to Broker.accept:
 * the submit socket's checks (storedMessage, admission, group commit) without encoding each message,
 * a round trip over IPC and decoding it again. The broker is looked up at each call: the shim starts
 * reading legacy publishers before the broker it feeds exists.
 */
export class LocalSubmitter {
  constructor(
    private readonly broker: () => Broker | undefined,
    private readonly peer: SubmitPeer = LOCAL_PEER,
  ) {}

  async submit(messages: readonly Message[]): Promise<Array<Ack | HeraldError>> {
    const broker = this.broker();
    if (broker === undefined)
      throw rejected("NO_BROKER", "the broker in this process has not started yet: retry with the same ids");
    const outcomes: Array<Ack | HeraldError> = new Array(messages.length);
    const valid: Message[] = [];
    const slots: number[] = [];
    messages.forEach((m, i) => {
      try {
        valid.push(storedMessage(m, broker.maxBodyBytes));
        slots.push(i);
      } catch (err) {
        outcomes[i] = toHeraldError(err, "INVALID");
      }
    });
    if (valid.length > 0) {
      const stored: SubmitResult[] = await broker.accept(valid, this.peer);
      stored.forEach((r, k) => {
        outcomes[slots[k]!] = toOutcome(r);
      });
    }
    return outcomes;
  }
}
