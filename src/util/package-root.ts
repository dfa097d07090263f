import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HeraldError } from "../errors.js";

let root: string | undefined;

/**
 * herald's own root directory (the one holding package.json, scripts/ and legacy-config/), found by
 * walking up from this module: it sits at a different depth in src/util/, dist/util/ and the CLI
 * bundle's flat dist/bin/, so a fixed "../.." would be right in only some of them.
 */
export function packageRoot(): string {
  if (root !== undefined) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const up = dirname(dir);
    if (up === dir)
      throw new HeraldError(
        "INTERNAL",
        `no package.json above ${fileURLToPath(import.meta.url)}: herald's files were moved apart; reinstall herald`,
      );
    dir = up;
  }
  root = dir;
  return dir;
}

/** The whole CLI in one bundle (`node dist/bin/herald.js COMMAND`), which npm run build writes beside the bin. */
export function cliEntry(): string {
  return join(packageRoot(), "dist", "bin", "herald.js");
}
