/**
 * zeromq through require(). An ESM `import` of this CommonJS package makes Node scan its sources (and
 * those it re-exports) for export names before running them, a measurable part of a one-shot
 * `herald publish`; require() skips the scan. It is the same module instance an `import` gets.
 */
import { createRequire } from "node:module";
import type * as Zmq from "zeromq";

export const zmq = createRequire(import.meta.url)("zeromq") as typeof Zmq;

/** Tries of one call before an interrupted one is reported after all; any real signal storm ends sooner. */
const INTERRUPTED_TRIES = 100;

/**
 * Run a synchronous libzmq call (connect, subscribe, a socket's first `events`, which starts its
 * monitor), again when a signal interrupted it. libzmq processes its socket's pending commands before
 * anything else and returns EINTR when a signal arrives there (a profiler's SIGPROF, SIGCHLD from a
 * child process), having done nothing, so trying again is safe. zeromq.js retries its own sends and
 * receives, not these: under `node --cpu-prof` about 1 connect in 100 failed with "Interrupted system call".
 *
 * A monitor start interrupted after binding its inproc endpoint leaves that endpoint bound until libzmq's
 * reaper thread has closed the old monitor, so the next try can meet EADDRINUSE: after an EINTR that is
 * waited out too, a millisecond at a time.
 */
export function retryInterrupted<T>(call: () => T): T {
  let interrupted = false;
  for (let tries = 1; ; tries++) {
    try {
      return call();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const leftover = interrupted && code === "EADDRINUSE";
      if (tries >= INTERRUPTED_TRIES || (code !== "EINTR" && !leftover)) throw err;
      interrupted = true;
      if (leftover) pauseMs(1);
    }
  }
}

/** Block this thread for `ms` (only where the wait is for another thread of libzmq's, briefly). */
function pauseMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Tries of a bind that libzmq answered EAGAIN (see bindRetryingEagain). */
const BIND_EAGAIN_TRIES = 3;

/**
 * `socket.bind()`, again when libzmq answered EAGAIN, which no bind failure means by itself: once, in CI
 * on a loaded machine, binding a port already in use came back EAGAIN instead of EADDRINUSE (a socket
 * with its monitor started; libzmq reports a failed bind to the monitor, and that send is the likely
 * source of the EAGAIN). Tried again, the real reason is reported. Only a failing bind pays.
 */
export async function bindRetryingEagain(
  socket: { bind(endpoint: string): Promise<void> },
  endpoint: string,
) {
  for (let tries = 1; ; tries++) {
    try {
      return await socket.bind(endpoint);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN" || tries >= BIND_EAGAIN_TRIES) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
