import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseEnvValue, plainEnvValue, yamlEnvValue } from "../src/config/env.js";

// plainEnvValue reads simple HERALD_* values without loading yaml; whenever it answers, the answer must
// be the one the YAML parser gives (it is only a shortcut, never a second dialect).
const TRICKY = [
  "tcp://127.0.0.1:9939",
  "ipc:///run/herald/submit.sock",
  "/var/lib/herald",
  "amqp://guest:guest@localhost:5672/%2F",
  "a:",
  "a:b:",
  "a::b",
  "a,b",
  "x=y",
  "a-b",
  "0",
  "007",
  "42",
  "123456789012345",
  "1234567890123456",
  "1e3",
  "0x1F",
  "true",
  "false",
  "True",
  "NULL",
  "null",
  "yes",
  "off",
  "info",
  "debug",
  "json",
  "fedora-messaging",
  "-1",
  ".inf",
  "~",
  "a #b",
  "a: b",
];

describe("plain HERALD_* values", () => {
  it("read as yaml reads them", () => {
    for (const raw of TRICKY) {
      const plain = plainEnvValue(raw);
      if (plain !== undefined) expect(plain, raw).toEqual(yamlEnvValue(raw));
      expect(parseEnvValue(raw), raw).toEqual(yamlEnvValue(raw));
    }
  });

  it("the common values take the shortcut", () => {
    for (const raw of ["tcp://127.0.0.1:9939", "/var/lib/herald", "warn", "5000", "true", "fedora-messaging"])
      expect(plainEnvValue(raw), raw).toBeDefined();
  });

  it("agree on generated text", () => {
    const chars = [..."aZx/09_.:@+=,%-#&*!~'\"[]{}| ?>\t\\"];
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...chars), maxLength: 12 }), (raw) => {
        const plain = plainEnvValue(raw);
        if (plain !== undefined) expect(plain).toEqual(yamlEnvValue(raw));
      }),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z/][A-Za-z0-9_./:@+=,%-]{0,15}$/), (raw) => {
        const plain = plainEnvValue(raw);
        if (plain !== undefined) expect(plain).toEqual(yamlEnvValue(raw));
      }),
      { numRuns: 5000 },
    );
  });
});
