/**
 * What the shim takes from the fedmsg config: topic_prefix and environment when herald's config leaves
 * them null (their default), and a directory with a dangling symlink read as fedmsg reads it.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfigText } from "../src/config/index.js";
import { loadLegacyConfig } from "../src/legacy/config/index.js";
import { ownerOf } from "../src/shim/feed.js";
import { resolvePlan } from "../src/shim/services.js";
import { createMessage } from "../src/wire/message.js";

const root = mkdtempSync(join(tmpdir(), "herald-legacy-review-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function fedmsgDir(name: string, body: string): string {
  const dir = join(root, name, "fedmsg.d");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "base.py"), body);
  return dir;
}

const STG = `config = dict(
    topic_prefix="org.example",
    environment="stg",
    endpoints={"bodhi.app01": ["tcp://127.0.0.1:3000"]},
)
`;

function heraldConfig(legacyConfig: string | null, extra = ""): ReturnType<typeof loadConfigText>["config"] {
  const text = `legacy:
  enabled: true
  config: ${legacyConfig === null ? "null" : legacyConfig}
${extra}  services:
    bodhi.app01: { stage: bridged${legacyConfig === null ? ', endpoints: ["tcp://127.0.0.1:3000"]' : ""} }
`;
  return loadConfigText(text, { file: join(root, "herald.yaml"), env: {} }).config;
}

describe("legacy.topicPrefix / legacy.environment", () => {
  it("default to null", () => {
    const { config } = loadConfigText(undefined, { env: {} });
    expect(config.legacy.topicPrefix).toBeNull();
    expect(config.legacy.environment).toBeNull();
  });

  it("come from the fedmsg config when herald's leaves them null, so bridged services are served", async () => {
    const dir = fedmsgDir("stg", STG);
    const config = heraldConfig(dir);
    const plan = resolvePlan(config, await loadLegacyConfig(dir, { python: false }));
    expect([plan.topicPrefix, plan.environment]).toEqual(["org.example", "stg"]);
    const msg = createMessage({
      topic: "org.example.stg.bodhi.update.comment",
      body: {},
      origin: { host: "app01" },
    });
    expect(ownerOf(msg, plan, new Set(["bodhi.app01"]))).toBe("bodhi.app01");
  });

  it("herald's own values win over the fedmsg config's", async () => {
    const dir = fedmsgDir("own", STG);
    const config = heraldConfig(dir, "  topicPrefix: org.mine\n  environment: dev\n");
    const plan = resolvePlan(config, await loadLegacyConfig(dir, { python: false }));
    expect([plan.topicPrefix, plan.environment]).toEqual(["org.mine", "dev"]);
  });

  it("are fedmsg's defaults without a fedmsg config", () => {
    const plan = resolvePlan(heraldConfig(null), undefined);
    expect([plan.topicPrefix, plan.environment]).toEqual(["org.fedoraproject", "prod"]);
  });
});

describe("a fedmsg.d with a dangling symlink", () => {
  it("is read by both evaluators, skipping the link as fedmsg's os.path.isfile does", async () => {
    const dir = fedmsgDir("dangling", STG);
    symlinkSync(join(root, "nonexistent", "old-app.py"), join(dir, "zz-old-app.py"));
    const restricted = await loadLegacyConfig(dir, { python: false });
    const python = await loadLegacyConfig(dir, { python: "/usr/bin/python3" });
    expect(restricted.files).toEqual([join(dir, "base.py")]);
    expect(restricted.endpoints).toEqual(python.endpoints);
    expect(restricted.environment).toBe("stg");
  });
});
