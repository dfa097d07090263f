/** Reading fedmsg configuration (fedmsg.d / fedmsg-config.py) the way fedmsg does. */
export { DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_MS, loadLegacyConfig } from "./load.js";
export { recursiveUpdate } from "./merge.js";
export { endpointProblem, normalizeLegacy } from "./normalize.js";
export { EVALUATOR_SCRIPT, findPython } from "./python.js";
export { compressPorts, legacyToHeraldYaml, renderLegacyTable } from "./render.js";
export {
  evaluateRestricted,
  evaluateSource,
  gatherConfigFiles,
  type RestrictedOptions,
} from "./restricted.js";
export type { DroppedValue, Evaluation, LegacyConfig, LoadLegacyOptions } from "./types.js";
