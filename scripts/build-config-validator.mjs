// `npm run build`, after tsc: generate dist/config/config-validator.PART.script.js, one per part of the
// config schema (the top level, each section), as plain code, and V8's code cache for each, so that no
// CLI start pays for compiling the schema with ajv nor for compiling the generated code (see
// src/config/validator-compile.ts; without the files, or with stale ones, herald compiles at run time).
import { readdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { STATIC_DEFAULTS } from "../dist/config/defaults.js";
import { generatedValidatorCache, generatedValidatorFile } from "../dist/config/validate.js";
import {
  evaluateValidatorScript,
  fingerprintLine,
  standaloneValidatorSource,
  VALIDATOR_PARTS,
} from "../dist/config/validator-compile.js";

const dir = new URL("../dist/config/", import.meta.url);
// Never leave an old script or cache beside new ones (a part renamed, the one-file layout before parts).
for (const f of readdirSync(dir))
  if (/^config-validator\..*script\.(js|cache)$/.test(f)) rmSync(new URL(f, dir));

for (const part of VALIDATOR_PARTS) {
  const file = new URL(generatedValidatorFile(part), dir);
  const source = standaloneValidatorSource(part);
  writeFileSync(file, source);
  const { validate, script } = evaluateValidatorScript(source, fileURLToPath(file));
  // One call compiles the validator function, so that its bytecode is in the cache too; and the
  // defaults must pass, since loadConfig skips the sections that still hold them.
  if (!validate(structuredClone(STATIC_DEFAULTS)))
    throw new Error(`the defaults fail the config schema's part ${part}: ${JSON.stringify(validate.errors)}`);
  // The cache starts with the fingerprint line of the source it belongs to (validate.ts checks it).
  const cache = Buffer.concat([Buffer.from(fingerprintLine()), script.createCachedData()]);
  writeFileSync(new URL(generatedValidatorCache(part), dir), cache);
}
