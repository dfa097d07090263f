/**
 * zeromq through require(). An ESM `import` of this CommonJS package makes Node scan its sources (and
 * those it re-exports) for export names before running them, a measurable part of a one-shot
 * `herald publish`; require() skips the scan. It is the same module instance an `import` gets.
 */
import { createRequire } from "node:module";
import type * as Zmq from "zeromq";

export const zmq = createRequire(import.meta.url)("zeromq") as typeof Zmq;
