import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { formatDuration, formatSize, loadConfigText, parseDuration, parseSize } from "../src/config/index.js";
import { ConfigError } from "../src/errors.js";

describe("parseDuration", () => {
  it.each([
    [0, 0],
    [1500, 1500],
    ["500ms", 500],
    ["2.5s", 2500],
    ["10m", 600_000],
    ["1h", 3_600_000],
    ["7d", 604_800_000],
    ["1h30m", 5_400_000],
    ["1m 30s", 90_000],
    ["250", 250],
    [" 5s ", 5000],
    [".5s", 500],
  ] as const)("%j -> %d ms", (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(
    ["", "soon", "5", "5 parsecs", "-1s", "1.2.3s", "s", "5sm", "1e3s", "NaN"].filter((s) => s !== "5"),
  )("rejects %j", (input) => {
    expect(() => parseDuration(input)).toThrow(ConfigError);
    expect(() => parseDuration(input)).toThrow(/invalid duration.*write e\.g\./);
  });

  it("rejects non-finite, negative and non-number values", () => {
    for (const v of [Number.NaN, Number.POSITIVE_INFINITY, -5, true, null, [], {}]) {
      expect(() => parseDuration(v)).toThrow(ConfigError);
    }
  });
});

describe("parseSize", () => {
  it.each([
    [0, 0],
    [4096, 4096],
    ["1MiB", 1024 ** 2],
    ["512KiB", 512 * 1024],
    ["1GiB", 1024 ** 3],
    ["1.5KiB", 1536],
    ["2M", 2 * 1024 ** 2],
    ["1MB", 1_000_000],
    ["1kb", 1000],
    ["100B", 100],
    ["100", 100],
    ["1 GiB", 1024 ** 3],
  ] as const)("%j -> %d bytes", (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it.each(["", "big", "1XB", "MiB", "-1KiB", "1..5MiB", "0x10"])("rejects %j", (input) => {
    expect(() => parseSize(input)).toThrow(/invalid size/);
  });
});

describe("format round-trips", () => {
  it("formatDuration/formatSize pick exact units", () => {
    expect(formatDuration(600_000)).toBe("10m");
    expect(formatDuration(2500)).toBe("2500ms");
    expect(formatDuration(0)).toBe("0ms");
    expect(formatDuration(86_400_000)).toBe("1d");
    expect(formatSize(1024 ** 3)).toBe("1GiB");
    expect(formatSize(1000)).toBe("1000B");
  });

  it("parse(format(x)) === x", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 45 }), (n) => {
        expect(parseDuration(formatDuration(n))).toBe(n);
        expect(parseSize(formatSize(n))).toBe(n);
      }),
      { numRuns: 1000 },
    );
  });
});

function onlyConfigErrors(text: string): void {
  try {
    loadConfigText(text, {
      file: "/fuzz/herald.yaml",
      env: {},
      machine: { uid: 1, homedir: "/h", hostname: "h" },
    });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    expect(err.message.length).toBeGreaterThan(0);
  }
}

describe("fuzz", () => {
  it("random junk text never throws anything but ConfigError", () => {
    const yamlish = fc.stringMatching(/^[a-zA-Z0-9 :\-[\]{},'"#&*!|>%@`?\n\t.]{0,80}$/);
    fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 200 }), yamlish), onlyConfigErrors), {
      numRuns: 1500,
    });
  });

  it("random documents with real section names never throw anything but ConfigError", () => {
    const key = fc.constantFrom(
      "paths",
      "broker",
      "outbox",
      "sinks",
      "sources",
      "legacy",
      "security",
      "log",
      "x",
    );
    const sub = fc.constantFrom(
      "maxMessages",
      "publish",
      "name",
      "type",
      "services",
      "policy",
      "level",
      "url",
      "0",
    );
    const leaf = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small" },
        leaf,
        fc.array(tie("node"), { maxLength: 3 }),
        fc.dictionary(sub, tie("node"), { maxKeys: 3 }),
      ),
    })).node;
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 4 }), (doc) => onlyConfigErrors(stringify(doc))),
      { numRuns: 1000 },
    );
  });
});
