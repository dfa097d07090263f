interface Waiter {
  after: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Promises waiting for the head seq to pass a value (dispatchers parked on an empty outbox). */
export class AppendWaiters {
  private readonly waiters = new Set<Waiter>();

  /** Resolves once `notify(head)` is called with head > afterSeq; rejects on abort or `rejectAll`. */
  wait(afterSeq: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.waiters.delete(waiter);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        after: afterSeq,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (e: unknown) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      this.waiters.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  notify(head: number): void {
    for (const w of this.waiters) {
      if (head <= w.after) continue;
      this.waiters.delete(w);
      w.resolve();
    }
  }

  rejectAll(err: unknown): void {
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
  }
}
