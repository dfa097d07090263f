import { ConfigError } from "../../../errors.js";

export type RestrictedKind = "syntax" | "unsupported" | "exception" | "timeout" | "memory";

const FIX: Record<RestrictedKind, string> = {
  syntax: "fix the file (it must be valid python 3)",
  unsupported: "install python3 (the full evaluator) or rewrite that part with plain literals",
  exception: "fix the file so fedmsg itself could load it",
  timeout: "the file loops too long; fix it, or install python3 and raise timeoutMs",
  memory: "the file builds something enormous; fix it",
};

/**
 * A restricted-evaluator failure: always a LEGACY_CONFIG ConfigError naming file, line and, for
 * unsupported constructs, the construct ("class definitions are not supported ...").
 */
export class RestrictedError extends ConfigError {
  readonly kind: RestrictedKind;

  constructor(kind: RestrictedKind, what: string, file: string, line: number, fix?: string) {
    const body =
      kind === "unsupported"
        ? `${what} not supported by the restricted evaluator`
        : kind === "syntax"
          ? `invalid syntax: ${what}`
          : what;
    super("LEGACY_CONFIG", `${file}:${line}: ${body}; ${fix ?? FIX[kind]}`, {
      details: {
        file,
        line,
        kind,
        ...(kind === "unsupported" ? { construct: what.replace(/ (is|are)$/, "") } : {}),
      },
    });
    this.kind = kind;
  }
}

/** A Python-level exception (KeyError, ImportError...) that `try/except` in the config may catch. */
export class PyException extends Error {
  constructor(
    readonly pyType: string,
    message: string,
    public line = 0,
  ) {
    super(message);
  }
}

/** Python's exception hierarchy, as far as `except X:` matching needs it. */
const PARENT: Record<string, string> = {
  ModuleNotFoundError: "ImportError",
  ImportError: "Exception",
  KeyError: "LookupError",
  IndexError: "LookupError",
  LookupError: "Exception",
  ZeroDivisionError: "ArithmeticError",
  OverflowError: "ArithmeticError",
  ArithmeticError: "Exception",
  TypeError: "Exception",
  ValueError: "Exception",
  NameError: "Exception",
  AttributeError: "Exception",
  OSError: "Exception",
  Exception: "BaseException",
};

export function exceptionMatches(raised: string, handler: string): boolean {
  for (
    let t: string | undefined = raised;
    t !== undefined;
    t = Object.hasOwn(PARENT, t) ? PARENT[t] : undefined
  )
    if (t === handler) return true;
  return handler === "BaseException";
}

export function isKnownException(name: string): boolean {
  return Object.hasOwn(PARENT, name) || name === "BaseException";
}
