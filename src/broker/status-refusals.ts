import type { HeraldError } from "../errors.js";
import type { AppendResult } from "../storage/types.js";
import type { Logger } from "../util/log.js";

/**
 * Refusals of a healthy outbox: the disk is full (STORAGE_FULL) or the outbox is at outbox.maxMessages /
 * outbox.maxBytes (OUTBOX_FULL). Clients get a clear retryable error for each message, but the operator
 * saw nothing: no log line, `herald status` and /readyz healthy. This watches the append results and makes
 * such an episode visible: a warning when it begins, a reminder at most once a minute while it lasts, an
 * info line when a message is stored again with no refusal for 2 s; `status()` for `herald status`, /readyz and the metrics.
 */
const REFUSING = new Set(["STORAGE_FULL", "OUTBOX_FULL"]);
const REMIND_MS = 60_000;
/**
 * How long after the last refusal the broker still says "refusing": the episode ends only with a stored
 * message, but a broker that a balancer took out of rotation (/readyz 503) gets none to store. After this
 * long with no refusal it reads as ready again, and the next submission finds out.
 */
const STALE_MS = 30_000;
/**
 * A stored message ends an episode only once no refusal came for this long: at outbox.maxMessages with a
 * sink taking one message at a time, stores and refusals alternate every few milliseconds, and each store
 * ending the episode made the log and /readyz flap (99 lines in 10 s).
 */
const QUIET_MS = 2_000;

/** What `herald status --json` shows under `refusing` while (or since) the outbox refuses messages. */
export interface RefusingStatus {
  code: string;
  /** The outbox's error: what is full, and the fix. */
  message: string;
  since: string;
  lastAt: string;
  /** Messages refused with this code since the episode began. */
  refused: number;
  /** True while refusals are recent (within 30 s): /readyz is 503 and herald_outbox_refusing 1 meanwhile. */
  active: boolean;
}

interface Episode {
  code: string;
  message: string;
  since: number;
  lastAt: number;
  refused: number;
  remindedAt: number;
}

export class StorageRefusals {
  private episode: Episode | undefined;

  constructor(
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** After each append: a refusal begins or extends an episode, a newly stored message ends it. */
  note(results: readonly AppendResult[]): void {
    let refusal: HeraldError | undefined;
    let refused = 0;
    let stored = false;
    for (const r of results) {
      if (r.ok) stored ||= !r.duplicate;
      else if (REFUSING.has(r.error.code)) {
        refusal = r.error;
        refused++;
      }
    }
    if (refusal !== undefined) this.refusing(refusal, refused);
    else if (stored) this.accepting();
  }

  status(): RefusingStatus | undefined {
    const e = this.episode;
    if (e === undefined) return undefined;
    return {
      code: e.code,
      message: e.message,
      since: new Date(e.since).toISOString(),
      lastAt: new Date(e.lastAt).toISOString(),
      refused: e.refused,
      active: this.now() - e.lastAt < STALE_MS,
    };
  }

  private refusing(err: HeraldError, refused: number): void {
    const now = this.now();
    const e = this.episode;
    if (e === undefined || e.code !== err.code) {
      this.episode = {
        code: err.code,
        message: err.message,
        since: now,
        lastAt: now,
        refused,
        remindedAt: now,
      };
      this.log.warn("the outbox refuses new messages: clients get a retryable error until there is room", {
        code: err.code,
        reason: err.message,
      });
      return;
    }
    e.lastAt = now;
    e.refused += refused;
    e.message = err.message;
    if (now - e.remindedAt < REMIND_MS) return;
    e.remindedAt = now;
    this.log.warn("the outbox still refuses new messages", {
      code: e.code,
      since: new Date(e.since).toISOString(),
      refused: e.refused,
      reason: e.message,
    });
  }

  private accepting(): void {
    const e = this.episode;
    if (e === undefined || this.now() - e.lastAt < QUIET_MS) return;
    this.episode = undefined;
    this.log.info("the outbox accepts messages again", {
      code: e.code,
      since: new Date(e.since).toISOString(),
      refused: e.refused,
    });
  }
}
