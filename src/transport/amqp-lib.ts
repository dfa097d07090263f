/**
 * The one place herald loads amqplib, with herald's field-table decoder installed first (amqp-fields.ts
 * says why). amqplib's lib/defs.js copies `codec.decodeFields` into a local when it loads, and every
 * frame decoder it builds (frame.js, connection.js) captures what defs exports at their own load: the
 * decoder must be in codec's exports before any of those load, and nothing can change it afterwards.
 * Hence a module that patches and then loads amqplib in that order, in code rather than by import order
 * (which formatters sort and bundlers flatten), and which every herald module that opens connections
 * goes through (amqp-session.ts; test/amqp-lib.test.ts checks that no other module loads amqplib).
 * Each thread has its own module cache: the sink's worker thread (amqp-thread-worker.ts) loads this
 * module too, through amqp-session.ts.
 *
 * amqplib's package `exports` refuses the subpath "amqplib/lib/codec" (ERR_PACKAGE_PATH_NOT_EXPORTED);
 * the file is found from the package's main module instead, and Node's CommonJS cache is keyed by
 * absolute path, so this is the very instance defs.js requires as './codec'. Whether the decoder is
 * really the one amqplib's frame parser uses is checked once, on a header frame nested past the limit
 * (`amqplibGuard`): an amqplib upgrade that moves things, or an application that loaded amqplib before
 * herald, leaves it inactive, which test/amqp-lib.test.ts fails on and `warnIfUnguarded` logs.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type * as Amqplib from "amqplib";
import { decodeFieldTable, MAX_TABLE_DEPTH, undecodableTable } from "./amqp-fields.js";
import type { AmqpLogger } from "./amqp-options.js";

const load = createRequire(import.meta.url);

export interface AmqplibGuard {
  /** amqplib's frame parser decodes header tables with herald's decoder. */
  active: boolean;
  /** Why not, when not. */
  problem?: string;
}

function install(): string | undefined {
  try {
    const lib = join(dirname(load.resolve("amqplib")), "lib");
    const codec = load(join(lib, "codec.js")) as { decodeFields?: unknown };
    if (typeof codec.decodeFields !== "function") return "amqplib's lib/codec.js has no decodeFields";
    codec.decodeFields = decodeFieldTable;
    return undefined;
  } catch (err) {
    return `amqplib's lib/codec.js could not be loaded: ${(err as Error).message}`;
  }
}

const installProblem = install();
/** amqplib itself, loaded after the decoder is in place. */
export const amqplib: typeof Amqplib = load("amqplib");

/** A content-header frame (basic class) whose `headers` table nests `depth` tables {"a": ...}. */
export function nestedHeaderFrame(depth: number): Buffer {
  const frame = Buffer.alloc(18 + depth * 7);
  frame.writeUInt16BE(60, 0); // class basic; weight 0; body size 0 (bytes 4-11)
  frame.writeUInt16BE(0x2000, 12); // property flags: headers only
  frame.writeUInt32BE(depth * 7, 14);
  for (let i = 0, at = 18; i < depth; i++, at += 7) {
    frame.write("\x01aF", at, "latin1"); // key "a", type table
    frame.writeUInt32BE((depth - i - 1) * 7, at + 3);
  }
  return frame;
}

function check(): AmqplibGuard {
  if (installProblem !== undefined) return { active: false, problem: installProblem };
  try {
    const lib = join(dirname(load.resolve("amqplib")), "lib");
    const frame = load(join(lib, "frame.js")) as {
      decodeFrame(f: { type: number; channel: number; payload: Buffer }): { fields?: { headers?: unknown } };
    };
    const decoded = frame.decodeFrame({
      type: 2,
      channel: 1,
      payload: nestedHeaderFrame(MAX_TABLE_DEPTH + 1),
    });
    if (undecodableTable(decoded.fields?.headers) !== undefined) return { active: true };
    return {
      active: false,
      problem:
        "amqplib's frame parser does not use herald's decoder: amqplib was loaded before herald's transport, or its internals changed",
    };
  } catch (err) {
    return {
      active: false,
      problem: `amqplib's frame parser could not be checked: ${(err as Error).message}`,
    };
  }
}

/** Whether herald's decoder is the one amqplib's frame parser uses (checked once, at load). */
export const amqplibGuard: Readonly<AmqplibGuard> = Object.freeze(check());

let warned = false;

/** Says once per thread, at the first connection, that deeply nested headers are not handled. */
export function warnIfUnguarded(log: AmqpLogger): void {
  if (amqplibGuard.active || warned) return;
  warned = true;
  log(
    "warn",
    `herald's AMQP header decoder is not in place (${amqplibGuard.problem}): a message whose headers nest deeper than amqplib's decoder can recurse fails the connection at every redelivery instead of being rejected; import herald before anything else loads amqplib, and use the amqplib version herald's package.json names`,
  );
}
