import { ConfigError } from "../../errors.js";

/** A JSON value as produced by either evaluator. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** The fedmsg configuration, evaluated, merged and normalized into the keys herald cares about. */
export interface LegacyConfig {
  /** The merged `config` dict, JSON-representable values only. */
  raw: Record<string, unknown>;
  /** Files executed, in order (absolute paths). */
  files: string[];
  evaluator: "python" | "restricted";
  /** Service name -> endpoints (`tcp://host:port` or `ipc://path`). */
  endpoints: Record<string, string[]>;
  relayInbound?: string;
  topicPrefix: string;
  environment: string;
  active?: boolean;
  name?: string;
  highWaterMark?: number;
  /** Full topic -> certificate names allowed to publish it. */
  routingPolicy: Record<string, string[]>;
  /** Service name -> certificate name prefix. */
  certnames: Record<string, string>;
  routingNitpicky: boolean;
  /** Every `zmq_*` key, verbatim. */
  zmq: Record<string, number | boolean>;
  warnings: string[];
}

export interface LoadLegacyOptions {
  /** Python interpreter; `false` forces the restricted evaluator. Default: /usr/bin/python3, else python3. */
  python?: string | false;
  /** Whole-evaluation deadline. Default 10 000 ms. */
  timeoutMs?: number;
  /** Address-space limit for the python evaluator. Default 512 MiB. */
  memoryBytes?: number;
  /** What `socket.gethostname()` returns (tests use it for determinism). */
  hostname?: string;
  /** Extra environment for the config files (`os.environ`), overlaid on this process's environment. */
  env?: Record<string, string>;
}

/** A value the python evaluator could not carry over to JSON. */
export interface DroppedValue {
  file: string;
  path: string;
  type: string;
  action: string;
}

/** What an evaluator hands back before normalization (the python script's JSON output). */
export interface Evaluation {
  config: JsonObject;
  files: string[];
  withoutConfig: string[];
  /** Top-level key and `key.subkey` -> the file that set it last (used to name files in errors). */
  origins: Record<string, string>;
  dropped: DroppedValue[];
}

/** The one way this module fails: a LEGACY_CONFIG ConfigError naming the file, line and fix. */
export function legacyError(
  message: string,
  details: { file?: string; line?: number; construct?: string; kind?: string; internal?: boolean },
  cause?: unknown,
): ConfigError {
  const where = details.file ? `${details.file}${details.line ? `:${details.line}` : ""}: ` : "";
  return new ConfigError("LEGACY_CONFIG", `${where}${message}`, { details, cause });
}

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
