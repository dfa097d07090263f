// `npm run build`, after tsc: generate dist/config/config-validator.script.js, the config schema's
// validator as plain code, and V8's code cache for it, so that no CLI start pays for compiling the
// schema with ajv nor for compiling the generated code (see src/config/validator-compile.ts; without
// the files, or with stale ones, herald compiles at run time).
import { rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { STATIC_DEFAULTS } from "../dist/config/defaults.js";
import { GENERATED_VALIDATOR, GENERATED_VALIDATOR_CACHE } from "../dist/config/validate.js";
import {
  evaluateValidatorScript,
  fingerprintLine,
  standaloneValidatorSource,
} from "../dist/config/validator-compile.js";

const dir = new URL("../dist/config/", import.meta.url);
const file = new URL(GENERATED_VALIDATOR, dir);
const cacheFile = new URL(GENERATED_VALIDATOR_CACHE, dir);
rmSync(cacheFile, { force: true }); // never leave an old cache next to a new script
const source = standaloneValidatorSource();
writeFileSync(file, source);
const { validate, script } = evaluateValidatorScript(source, fileURLToPath(file));
// One call compiles the validator function, so that its bytecode is in the cache too.
validate(structuredClone(STATIC_DEFAULTS));
// The cache starts with the fingerprint line of the source it belongs to (validate.ts checks it).
writeFileSync(cacheFile, Buffer.concat([Buffer.from(fingerprintLine()), script.createCachedData()]));
