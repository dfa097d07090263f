/** Body schemas (schemas.dir): the broker checks each body against its schema's file before storing it. */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type RunningBroker, startBroker } from "../src/cli/serve.js";
import { HeraldClient } from "../src/client/publisher.js";
import { loadConfigText } from "../src/config/load.js";
import { ConfigError, HeraldError } from "../src/errors.js";
import { silentLogger } from "../src/util/log.js";
import { CLI } from "./helpers/serve.js";

let running: RunningBroker | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await running?.stop();
  running = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

const BUILD = {
  $schema: "https://json-schema.org/draft/2020-12/schema",
  type: "object",
  required: ["build", "state"],
  properties: { build: { type: "integer" }, state: { enum: ["ok", "failed"] } },
  additionalProperties: false,
};

function site(files: Record<string, unknown>, strict = false) {
  const dir = mkdtempSync(join(tmpdir(), "herald-schemas-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "schemas"));
  for (const [name, body] of Object.entries(files))
    writeFileSync(join(dir, "schemas", name), typeof body === "string" ? body : JSON.stringify(body));
  const text = stringify({
    paths: { runtimeDir: join(dir, "run"), dataDir: join(dir, "data") },
    broker: { name: "schemas", publish: [], publishDelay: 0 },
    schemas: { dir: "schemas", strict },
  });
  const config = loadConfigText(text, { file: join(dir, "herald.yaml"), env: {} }).config;
  return { dir, config };
}

async function client(config: ReturnType<typeof site>["config"]): Promise<HeraldClient> {
  running = await startBroker(config, silentLogger);
  const c = new HeraldClient({
    endpoint: `ipc://${join(config.paths.runtimeDir, "submit.sock")}`,
    retries: 0,
  });
  cleanups.push(() => c.close());
  return c;
}

async function refusal(p: Promise<unknown>): Promise<HeraldError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HeraldError);
  return err as HeraldError;
}

describe("body schemas", () => {
  it("stores a body that matches its schema and refuses one that does not, naming the file and the problems", async () => {
    const { config } = site({ "koji.build.json": BUILD });
    const c = await client(config);
    const ok = await c.publish("org.example.koji.build", { build: 7, state: "ok" }, { schema: "koji.build" });
    expect(ok.seq).toBe(1);
    const bad = await refusal(
      c.publish("org.example.koji.build", { build: "7", state: "meh", extra: 1 }, { schema: "koji.build" }),
    );
    expect(bad.code).toBe("INVALID");
    expect(bad.message).toMatch(/does not match schema koji\.build \(.*koji\.build\.json\): /);
    expect(bad.message).toMatch(/body\.build must be integer/);
    expect(bad.message).toMatch(/must NOT have additional properties \(extra\)/);
    // Another schema name, or none: stored unchecked (not strict).
    await c.publish("org.example.other", { anything: true }, { schema: "other.thing" });
    await c.publish("org.example.plain", { build: "x" });
    expect(running!.broker.status().outbox.headSeq).toBe(3);
  });

  it("takes <schema>@<version>.json first, then <schema>.json", async () => {
    const v2 = { type: "object", required: ["build", "arch"] };
    const { config } = site({ "koji.build.json": BUILD, "koji.build@2.json": v2 });
    const c = await client(config);
    await c.publish(
      "org.example.koji.build",
      { build: 1, arch: "x86_64" },
      { schema: "koji.build", schemaVersion: 2 },
    );
    const v1 = await refusal(
      c.publish("org.example.koji.build", { build: 1, arch: "x86_64" }, { schema: "koji.build" }),
    );
    expect(v1.message).toMatch(/additional properties \(arch\)/);
  });

  it("strict: refuses a schema name with no file, except the default", async () => {
    const { config } = site({ "koji.build.json": BUILD }, true);
    const c = await client(config);
    const unknown = await refusal(c.publish("org.example.x", {}, { schema: "nope.thing" }));
    expect(unknown.code).toBe("INVALID");
    expect(unknown.message).toMatch(
      /names schema nope\.thing .*does not know \(schemas\.strict\): add .*nope\.thing\.json/,
    );
    await c.publish("org.example.x", { plain: 1 });
  });

  it("a schema file that is not JSON, or not a schema, stops the start with a configuration error naming it", async () => {
    for (const [name, text, why] of [
      ["broken.json", "{ not json", /broken\.json is not readable JSON/],
      ["wrong.json", JSON.stringify({ type: "no-such-type" }), /wrong\.json is not a valid JSON Schema/],
    ] as const) {
      const { config } = site({ [name]: text });
      const err = await startBroker(config, silentLogger).then(
        (r) => r.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(err, name).toBeInstanceOf(ConfigError);
      expect(String((err as Error).message)).toMatch(why);
    }
  });

  it("herald config check compiles the schema files too", () => {
    const check = (dir: string) =>
      spawnSync(process.execPath, [CLI, "config", "check", join(dir, "herald.yaml")], { encoding: "utf8" });
    const good = site({ "koji.build.json": BUILD });
    writeFileSync(join(good.dir, "herald.yaml"), stringify({ schemas: { dir: "schemas" } }));
    const ok = check(good.dir);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/: ok, 1 body schema\(s\) in .*schemas/);
    const bad = site({ "broken.json": "{ nope" });
    writeFileSync(join(bad.dir, "herald.yaml"), stringify({ schemas: { dir: "schemas" } }));
    const no = check(bad.dir);
    expect(no.status).toBe(3);
    expect(no.stderr).toMatch(/broken\.json is not readable JSON/);
  });

  it("refuses at start what would make checking unsafe or wrong: $async, uniqueItems over objects, draft-04; resolves $ref across files in any order", async () => {
    for (const [files, why] of [
      [{ "a.json": { $async: true, type: "object" } }, /a\.json .*asynchronous \(\$async\)/],
      [
        { "b.json": { type: "object", properties: { xs: { type: "array", uniqueItems: true } } } },
        /b\.json .*uniqueItems at \/properties\/xs .*stall the broker/,
      ],
      [
        { "c.json": { $schema: "http://json-schema.org/draft-04/schema#", type: "object" } },
        /c\.json .*draft-04/,
      ],
    ] as const) {
      const { config } = site(files);
      const err = await startBroker(config, silentLogger).then(
        (r) => r.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(ConfigError);
      expect(String((err as Error).message)).toMatch(why);
    }
    // "a.json" refers to "z.json" (sorted after it) by $id; draft-06 and scalar uniqueItems are fine.
    const { config } = site({
      "a.ref.json": { type: "object", properties: { tag: { $ref: "https://example.org/z" } } },
      "z.json": { $id: "https://example.org/z", type: "string", maxLength: 3 },
      "six.json": { $schema: "http://json-schema.org/draft-06/schema#", type: "object", required: ["n"] },
      "tags.json": {
        type: "object",
        properties: { t: { type: "array", uniqueItems: true, items: { type: "string" } } },
      },
    });
    const c = await client(config);
    const long = await refusal(c.publish("org.example.x", { tag: "toolong" }, { schema: "a.ref" }));
    expect(long.message).toMatch(/body\.tag must NOT have more than 3 characters/);
    await c.publish("org.example.x", { tag: "ok" }, { schema: "a.ref" });
    expect((await refusal(c.publish("org.example.x", {}, { schema: "six" }))).message).toMatch(
      /must have required property 'n'/,
    );
    expect(
      (await refusal(c.publish("org.example.x", { t: ["a", "a"] }, { schema: "tags" }))).message,
    ).toMatch(/duplicate items/);
  });
});
