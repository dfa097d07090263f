// `npm run build`, after tsc: generate dist/config/config-validator.cjs, the config schema's validator
// as plain code, so that no CLI start pays for compiling the schema with ajv (see
// src/config/validator-compile.ts; without the file, or with a stale one, herald compiles at run time).
import { writeFileSync } from "node:fs";
import { GENERATED_VALIDATOR } from "../dist/config/validate.js";
import { standaloneValidatorSource } from "../dist/config/validator-compile.js";

const out = new URL(GENERATED_VALIDATOR, new URL("../dist/config/", import.meta.url));
writeFileSync(out, standaloneValidatorSource());
