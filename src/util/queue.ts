import { HeraldError } from "../errors.js";

/**
 * An async FIFO with one consumer: producers `push`, the consumer iterates. Bounded when `limit` is
 * set: `push` returns false (the caller decides to drop and count, or to wait) instead of growing.
 * A second reader waiting while the first one waits is refused with `secondReader` as the message
 * (say what the owner is, and the fix).
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private head = 0;
  private waiter: ((r: IteratorResult<T>) => void) | undefined;
  private failWaiter: ((e: unknown) => void) | undefined;
  private closed = false;
  private error: unknown;

  constructor(
    private readonly limit = Number.POSITIVE_INFINITY,
    private readonly secondReader = "this queue already has a reader waiting: read it from one loop at a time",
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  push(item: T): boolean {
    if (this.closed) return false;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      this.failWaiter = undefined;
      w({ value: item, done: false });
      return true;
    }
    if (this.size >= this.limit) return false;
    this.items.push(item);
    return true;
  }

  /** End the stream; with an error, the consumer's next read throws it. */
  close(error?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.error = error;
    if (error !== undefined && this.failWaiter) this.failWaiter(error);
    else this.waiter?.({ value: undefined, done: true });
    this.waiter = undefined;
    this.failWaiter = undefined;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.size > 0) {
      const value = this.items[this.head] as T;
      this.items[this.head] = undefined as T;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.closed) {
      return this.error === undefined
        ? Promise.resolve({ value: undefined, done: true })
        : Promise.reject(this.error);
    }
    if (this.waiter) return Promise.reject(new HeraldError("UNSUPPORTED", this.secondReader));
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => this.next(),
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
