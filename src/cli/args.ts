import { type ParseArgsConfig, parseArgs } from "node:util";
import { HeraldError } from "../errors.js";

/** Exit codes, documented in docs/cli.md. */
export const EXIT = {
  ok: 0,
  /** The operation ran and failed (message rejected, check failed, refused). */
  failed: 1,
  /** Wrong command line. */
  usage: 2,
  /** Configuration (herald YAML or legacy fedmsg files) is wrong. */
  config: 3,
  /** No broker answered / a service is unreachable. */
  unavailable: 4,
  /** Storage failure (fail-stop) in `herald serve`. */
  storage: 5,
  /** Security fail-stop in `herald serve`: the ZAP handler guarding CURVE sockets died (fail closed). */
  security: 6,
} as const;

export class UsageError extends HeraldError {
  constructor(message: string) {
    super("BAD_REQUEST", message);
  }
}

export type Options = NonNullable<ParseArgsConfig["options"]>;

export const COMMON_OPTIONS = {
  config: { type: "string", short: "c" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{
    args: string[];
    options: typeof COMMON_OPTIONS & O;
    allowPositionals: true;
    strict: true;
  }>
>;

export function parse<O extends Options>(argv: string[], options: O, usage: string): Parsed<O> {
  try {
    return parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${usage}`);
  }
}

/** Refuse arguments a command does not take: silently ignoring one checked or showed the wrong file. */
export function noMore(extra: readonly string[], usage: string): void {
  if (extra.length > 0)
    throw new UsageError(`unexpected argument${extra.length > 1 ? "s" : ""}: ${extra.join(" ")}\n\n${usage}`);
}

export { out } from "./stdout.js";
