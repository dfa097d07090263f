import type { Message } from "../wire/message.js";
import type { AppendResult } from "./types.js";

type Job = { messages: readonly Message[]; resolve: (r: AppendResult[]) => void };

/**
 * Group commit: all appends made in one event-loop turn share one transaction (one fsync), committed on
 * setImmediate. Each caller gets its own slice of the results.
 */
export class CommitQueue {
  private queue: Job[] = [];
  private scheduled = false;

  constructor(
    /** Commit these messages in one transaction; one result per message, in order. */
    private readonly commit: (messages: readonly Message[]) => AppendResult[],
    /** After the results were handed out. */
    private readonly committed: () => void,
  ) {}

  push(messages: readonly Message[]): Promise<AppendResult[]> {
    return new Promise((resolve) => {
      this.queue.push({ messages, resolve });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => this.drain());
    });
  }

  /** Commit what is queued now (also called by close, so that nothing queued is left unanswered). */
  drain(): void {
    this.scheduled = false;
    const jobs = this.queue;
    this.queue = [];
    if (jobs.length === 0) return;
    const results = this.commit(jobs.flatMap((j) => j.messages));
    let offset = 0;
    for (const job of jobs) {
      job.resolve(results.slice(offset, offset + job.messages.length));
      offset += job.messages.length;
    }
    this.committed();
  }
}
