import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CONFIG_SCHEMA, loadConfigText } from "../src/config/index.js";
import type { SchemaNode } from "../src/config/schema.js";

const DOC = fs.readFileSync(path.join(import.meta.dirname, "..", "docs", "configuration.md"), "utf8");

/** Documented key paths: lists of mappings as `[]`, free-form maps as `<name>`. */
function keyPaths(node: SchemaNode, prefix: string, out: string[]): void {
  const branches = node.oneOf ?? [node];
  const props = branches.flatMap((b) => Object.entries(b.properties ?? {}));
  if (props.length > 0) {
    for (const [key, child] of props) keyPaths(child, prefix === "" ? key : `${prefix}.${key}`, out);
  } else if (
    node.items !== undefined &&
    (node.items.properties !== undefined || node.items.oneOf !== undefined)
  ) {
    out.push(prefix);
    keyPaths(node.items, `${prefix}[]`, out);
  } else if (typeof node.additionalProperties === "object") {
    out.push(prefix);
    keyPaths(node.additionalProperties, `${prefix}.<name>`, out);
  } else out.push(prefix);
}

describe("docs/configuration.md", () => {
  const paths = [
    ...new Set(
      (() => {
        const out: string[] = [];
        keyPaths(CONFIG_SCHEMA, "", out);
        return out;
      })(),
    ),
  ];

  it("documents every key of the schema", () => {
    expect(paths.length).toBeGreaterThan(60);
    const missing = paths.filter((p) => !DOC.includes(`\`${p}\``));
    expect(missing).toEqual([]);
  });

  it("documents no key that does not exist", () => {
    const documented = [...DOC.matchAll(/^\| `([a-zA-Z.[\]<>]+)` \|/gm)].map((m) => m[1]);
    const known = (p: string) => paths.some((k) => k === p || k.startsWith(`${p}.`));
    expect(documented.filter((p) => p !== undefined && !known(p))).toEqual([]);
  });

  it("has a complete example that loads", () => {
    const example = DOC.split("## A complete example")[1]?.match(/```yaml\n([\s\S]*?)```/)?.[1];
    expect(example).toBeDefined();
    const { config } = loadConfigText(example, { file: "/etc/herald/herald.yaml", env: {} });
    expect(config.outbox.path).toBe("/srv/herald/outbox.db");
    expect(config.sinks.map((s) => s.type)).toEqual(["amqp", "forward"]);
  });
});
