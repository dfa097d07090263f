/**
 * Read herald.yaml keeping positions: every key path maps to the line/column of its key and value, so
 * validation errors and `config show` can point at the exact line.
 */
import type { Node } from "yaml";
import { yaml } from "./lazy-yaml.js";
import type { ConfigProblem } from "./problems.js";
import { dotted, isPlainObject, type KeyPath } from "./walk.js";

export interface Position {
  line: number;
  column: number;
}

export interface NodePosition {
  /** Position of the key (absent for list items). */
  key?: Position;
  /** Position of the value (or the key when the value is empty). */
  value: Position;
}

export interface ParsedYaml {
  /** undefined for an empty file (comments only). */
  data: Record<string, unknown> | undefined;
  positions: Map<string, NodePosition>;
  problems: ConfigProblem[];
}

function keyText(key: unknown): string {
  if (yaml().isScalar(key)) return String(key.value);
  return String(key);
}

function collectPositions(
  node: unknown,
  path: KeyPath,
  pos: (offset: number) => Position,
  out: Map<string, NodePosition>,
): void {
  const { isMap, isPair, isSeq } = yaml();
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const keyNode = pair.key as Node | null;
      const keyPos = keyNode?.range ? pos(keyNode.range[0]) : undefined;
      const valueNode = pair.value as Node | null;
      const valuePos = valueNode?.range ? pos(valueNode.range[0]) : keyPos;
      const childPath = [...path, keyText(pair.key)];
      if (valuePos !== undefined) out.set(dotted(childPath), { key: keyPos, value: valuePos });
      collectPositions(pair.value, childPath, pos, out);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const itemNode = item as Node | null;
      const childPath = [...path, i];
      if (itemNode?.range) out.set(dotted(childPath), { value: pos(itemNode.range[0]) });
      collectPositions(item, childPath, pos, out);
    });
  }
}

function firstLine(message: string): string {
  const line = message.split("\n")[0] ?? message;
  // yaml appends " at line N, column M:" which we already report in the location prefix.
  return line.replace(/ at line \d+, column \d+:?$/, "");
}

/**
 * A parse error in herald's words. The yaml package's own texts give library advice ("please use
 * YAML.parseAllDocuments()") or name a stack overflow instead of the file's problem.
 */
function syntaxMessage(err: { code: string; message: string }): string {
  if (err.code === "MULTIPLE_DOCS")
    return "the file holds several YAML documents (a `---` line starts another) and herald reads one: merge them into one, or remove the `---` line";
  if (err.code === "RESOURCE_EXHAUSTION")
    return `YAML nests too deep to read (${firstLine(err.message)}): herald's settings nest a few levels; look for brackets or indentation that never close`;
  return `YAML syntax: ${firstLine(err.message)}`;
}

/** Parse YAML text; syntax problems come back as problems (with line/column), never as throws. */
export function parseYaml(text: string, file: string): ParsedYaml {
  const { LineCounter, parseDocument } = yaml();
  const lineCounter = new LineCounter();
  const positions = new Map<string, NodePosition>();
  const problems: ConfigProblem[] = [];
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const pos = (offset: number): Position => {
    const lp = lineCounter.linePos(offset);
    return { line: lp.line, column: lp.col };
  };
  for (const err of doc.errors) {
    const at = pos(err.pos[0]);
    problems.push({ path: "", file, line: at.line, column: at.column, message: syntaxMessage(err) });
  }
  if (problems.length > 0) return { data: undefined, positions, problems };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    problems.push({ path: "", file, message: `YAML cannot be read: ${message}` });
    return { data: undefined, positions, problems };
  }
  if (value === null || value === undefined) return { data: undefined, positions, problems };
  if (!isPlainObject(value)) {
    const at = doc.contents?.range ? pos(doc.contents.range[0]) : undefined;
    problems.push({
      path: "",
      file,
      line: at?.line,
      column: at?.column,
      message: `the top level must be a mapping of sections (paths:, broker:, outbox: ...), got ${Array.isArray(value) ? "a list" : typeof value}`,
    });
    return { data: undefined, positions, problems };
  }
  collectPositions(doc.contents, [], pos, positions);
  return { data: value, positions, problems };
}
