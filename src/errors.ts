/**
 * One error tree for all of herald. Every error carries a stable string `code` that survives
 * serialisation (it is what travels in submit replies), a `retryable` flag, and a message that names
 * the problem and the fix. Library errors (zeromq, amqplib, SQLite) are translated at the boundary.
 */

export type ErrorCode =
  | "TOO_LARGE"
  | "BAD_TOPIC"
  | "INVALID"
  | "BAD_REQUEST"
  | "OUTBOX_FULL"
  | "SHUTTING_DOWN"
  | "STORAGE_ERROR"
  | "STORAGE_FULL"
  | "NO_BROKER"
  | "TIMEOUT"
  | "CONFIG"
  | "LEGACY_CONFIG"
  | "PROTOCOL"
  | "TRANSPORT"
  | "UNSUPPORTED"
  | "CLOSED"
  | "BAD_SIGNATURE"
  | "UNKNOWN_KEY"
  | "REVOKED_KEY"
  | "UNAUTHORIZED_TOPIC"
  | "UNSIGNED"
  | "STALE"
  | "SECURITY"
  | "FORWARD_REFUSED"
  | "CUTOVER_REFUSED"
  | "ID_CONFLICT"
  | "INTERNAL";

export interface HeraldErrorOptions {
  cause?: unknown;
  retryable?: boolean;
  /** Extra machine-readable facts (key path, file, line, limit...). */
  details?: Record<string, unknown>;
}

/** Root of every error herald throws. */
export class HeraldError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: HeraldErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; retryable: boolean; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, retryable: this.retryable, details: this.details };
  }
}

/** The message itself cannot be accepted as sent (size, topic, schema, shape). Not retryable. */
export class MessageRejectedError extends HeraldError {}

/** The broker cannot take the message now (outbox full, shutting down, storage). Retry later. */
export class BrokerUnavailableError extends HeraldError {}

/** Configuration (herald YAML or legacy fedmsg files) is wrong. */
export class ConfigError extends HeraldError {}

/** Bytes on a socket or in a file do not follow the wire protocol. */
export class ProtocolError extends HeraldError {
  constructor(message: string, options: HeraldErrorOptions = {}) {
    super("PROTOCOL", message, options);
  }
}

/** A transport (ZeroMQ, AMQP, forwarding) failed. */
export class TransportError extends HeraldError {}

/** Signature, key or authorization failures. */
export class SecurityError extends HeraldError {}

/** Client-side: no answer from the broker in time, or no broker at all. */
export class ConnectionError extends HeraldError {}

/** Operation on something already closed. */
export class ClosedError extends HeraldError {
  constructor(what: string) {
    super("CLOSED", `${what} is closed: create a new one`);
  }
}

const CLASS_BY_CODE: Partial<
  Record<ErrorCode, new (code: ErrorCode, msg: string, o?: HeraldErrorOptions) => HeraldError>
> = {
  TOO_LARGE: MessageRejectedError,
  BAD_TOPIC: MessageRejectedError,
  INVALID: MessageRejectedError,
  BAD_REQUEST: MessageRejectedError,
  ID_CONFLICT: MessageRejectedError,
  OUTBOX_FULL: BrokerUnavailableError,
  SHUTTING_DOWN: BrokerUnavailableError,
  STORAGE_ERROR: BrokerUnavailableError,
  STORAGE_FULL: BrokerUnavailableError,
  BAD_SIGNATURE: SecurityError,
  UNKNOWN_KEY: SecurityError,
  REVOKED_KEY: SecurityError,
  UNAUTHORIZED_TOPIC: SecurityError,
  UNSIGNED: SecurityError,
  STALE: SecurityError,
  SECURITY: SecurityError,
  FORWARD_REFUSED: SecurityError,
};

const RETRYABLE: ReadonlySet<ErrorCode> = new Set([
  "OUTBOX_FULL",
  "SHUTTING_DOWN",
  "STORAGE_ERROR",
  "STORAGE_FULL",
  "TIMEOUT",
  "NO_BROKER",
  "FORWARD_REFUSED",
]);

/** Rebuild a typed error from its wire form (a submit reply). */
export function errorFromWire(wire: { code: string; message: string; details?: unknown }): HeraldError {
  const code = (isErrorCode(wire.code) ? wire.code : "INTERNAL") as ErrorCode;
  const Cls = CLASS_BY_CODE[code] ?? HeraldError;
  const details =
    typeof wire.details === "object" && wire.details !== null
      ? (wire.details as Record<string, unknown>)
      : {};
  return new Cls(code, wire.message, { retryable: RETRYABLE.has(code), details });
}

const ALL_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  "TOO_LARGE",
  "BAD_TOPIC",
  "INVALID",
  "BAD_REQUEST",
  "OUTBOX_FULL",
  "SHUTTING_DOWN",
  "STORAGE_ERROR",
  "STORAGE_FULL",
  "NO_BROKER",
  "TIMEOUT",
  "CONFIG",
  "LEGACY_CONFIG",
  "PROTOCOL",
  "TRANSPORT",
  "UNSUPPORTED",
  "CLOSED",
  "BAD_SIGNATURE",
  "UNKNOWN_KEY",
  "REVOKED_KEY",
  "UNAUTHORIZED_TOPIC",
  "UNSIGNED",
  "STALE",
  "SECURITY",
  "FORWARD_REFUSED",
  "CUTOVER_REFUSED",
  "ID_CONFLICT",
  "INTERNAL",
]);

export function isErrorCode(code: string): code is ErrorCode {
  return ALL_CODES.has(code);
}

/** Make a typed error out of whatever was thrown, keeping the original as `cause`. */
export function toHeraldError(err: unknown, fallback: ErrorCode = "INTERNAL"): HeraldError {
  if (err instanceof HeraldError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new HeraldError(fallback, message, { cause: err, retryable: RETRYABLE.has(fallback) });
}

/**
 * A stored message a sink cannot encode in its wire format (e.g. legacy-only headers no fedmsg envelope
 * can hold). Not retryable: the dispatcher passes it over for that sink instead of stalling it.
 */
export function unencodable(id: string, format: string, err: unknown): HeraldError {
  if (err instanceof MessageRejectedError) return err; // already says what is wrong with the message
  const why = err instanceof Error ? err.message : String(err);
  return rejected("INVALID", `message ${id} cannot be encoded in the ${format} format: ${why}`, {
    id,
    format,
  });
}

export function rejected(code: ErrorCode, message: string, details?: Record<string, unknown>): HeraldError {
  const Cls = CLASS_BY_CODE[code] ?? HeraldError;
  return new Cls(code, message, { retryable: RETRYABLE.has(code), details: details ?? {} });
}
