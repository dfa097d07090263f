/**
 * Small helpers shared by the loader, the env mapper and the renderer: walking the schema alongside
 * data, key-path formatting, and "did you mean" suggestions.
 */
import type { SchemaNode } from "./schema.js";

export type Segment = string | number;
export type KeyPath = readonly Segment[];

/** Dotted form used in provenance and messages: ["broker","publish",0,"endpoint"] -> "broker.publish.0.endpoint". */
export function dotted(path: KeyPath): string {
  return path.map(String).join(".");
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** For a discriminated union, the branch matching `data.type`; otherwise the node itself. */
export function branchFor(node: SchemaNode, data: unknown): SchemaNode | undefined {
  if (node.oneOf === undefined) return node;
  const tag = node.discriminator?.propertyName ?? "type";
  const value = isPlainObject(data) ? data[tag] : undefined;
  return node.oneOf.find((b) => b.properties?.[tag]?.const === value);
}

/** The schema of `data[key]` given the schema of `data`, or undefined when the key is not allowed. */
export function childSchema(node: SchemaNode, key: Segment, data: unknown): SchemaNode | undefined {
  if (typeof key === "number") return node.items;
  const branch = branchFor(node, data);
  if (branch === undefined) return undefined;
  const prop = branch.properties?.[key];
  if (prop !== undefined) return prop;
  return typeof branch.additionalProperties === "object" ? branch.additionalProperties : undefined;
}

/** Schema at a key path inside `root` data, or undefined if any step is not allowed. */
export function schemaAt(root: SchemaNode, rootData: unknown, path: KeyPath): SchemaNode | undefined {
  let node: SchemaNode | undefined = root;
  let data: unknown = rootData;
  for (const seg of path) {
    if (node === undefined) return undefined;
    node = childSchema(node, seg, data);
    data =
      data === null || typeof data !== "object" ? undefined : (data as Record<string, unknown>)[String(seg)];
  }
  return node;
}

/** Property names allowed at this level (all branches of a union when the type is unknown). */
export function allowedKeys(node: SchemaNode, data: unknown): string[] {
  const branch = branchFor(node, data);
  const branches = branch === undefined ? (node.oneOf ?? []) : [branch];
  return [...new Set(branches.flatMap((b) => Object.keys(b.properties ?? {})))];
}

export function isArraySchema(node: SchemaNode): boolean {
  return node.type === "array" || (Array.isArray(node.type) && node.type.includes("array"));
}

export function isObjectSchema(node: SchemaNode): boolean {
  return node.type === "object" || (Array.isArray(node.type) && node.type.includes("object"));
}

export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

const squash = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]/g, "");

/**
 * The allowed key closest to `wrong`, if close enough to be a plausible typo. Case and separators are
 * ignored first (max_messages -> maxMessages), then edit distance up to about a third of the length.
 */
export function suggest(wrong: string, candidates: readonly string[]): string | undefined {
  const w = squash(wrong);
  const exact = candidates.find((c) => squash(c) === w);
  if (exact !== undefined) return exact;
  let best: string | undefined;
  let bestDist = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = levenshtein(w, squash(c));
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  const limit = Math.max(1, Math.floor(Math.max(w.length, 3) / 3));
  return bestDist <= limit ? best : undefined;
}

/** camelCase -> UPPER_SNAKE, the env-var spelling of one key segment. */
export function upperSnake(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .toUpperCase();
}

/** Env var name for a key path: ["outbox","maxMessages"] -> HERALD_OUTBOX__MAX_MESSAGES. */
export function envVarFor(path: KeyPath): string {
  return `HERALD_${path.map((s) => upperSnake(String(s))).join("__")}`;
}
