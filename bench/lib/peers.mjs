// fedmsg and fedora-messaging themselves, from source trees given with `--fedmsg-src DIR` and
// `--fedora-messaging-src DIR` (neither installs here from a registry). Without them the Python
// reproductions in bench/py/ are the references; with them, the figures gain a second reference measured
// on the real code in the same run.
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { nodeWorker, runJson, startChild, tempDir } from "./procs.mjs";
import { AMQP_URL, PY, repeat } from "./util.mjs";

const py = (f) => new URL(`../py/${f}`, import.meta.url).pathname;

const PACKAGES = {
  "fedmsg-src": { pkg: "fedmsg", repo: "fedora-infra/fedmsg" },
  "fedora-messaging-src": { pkg: "fedora_messaging", repo: "fedora-infra/fedora-messaging" },
};

/**
 * The absolute source tree for option `opt`, or undefined when not given. Throws a usage error naming
 * the fix when the directory does not hold the package.
 */
export function sourceTree(opt, dir) {
  if (dir === undefined) return undefined;
  const { pkg, repo } = PACKAGES[opt];
  const abs = resolve(dir);
  if (!existsSync(join(abs, pkg, "__init__.py")))
    throw new Error(
      `--${opt} ${dir}: no ${pkg}/__init__.py there; pass the directory that holds the ${pkg} package (a checkout of ${repo})`,
    );
  return abs;
}

/** Python with the tree first on its path, as an installed package would be found. */
function pyEnv(src, extra = {}) {
  const path = process.env.PYTHONPATH;
  return { ...process.env, PYTHONPATH: path ? `${src}:${path}` : src, ...extra };
}

/** fedmsg.publish fire-and-forget from one process with one SUB connected; once per run (memoized). */
export function fedmsgPublish(ctx) {
  return ctx.memo("py.fedmsg_publish", () =>
    repeat(ctx.reps, async () => {
      const count = String(ctx.n(60_000, 6000));
      const p = startChild(PY, [py("fedmsg_publish.py"), "--src", ctx.fedmsgSrc, "--count", count], {
        env: pyEnv(ctx.fedmsgSrc),
      });
      let sub;
      try {
        const { bound, version } = await p.waitLine((l) => l.bound, 60_000);
        ctx.versions.fedmsg ??= `${version} (source tree ${ctx.fedmsgSrc})`;
        sub = nodeWorker("sub-collect.mjs", ["--connect", bound, "--expect", "1000000000", "--noprobe"]);
        return await p.waitLine((l) => l.rate !== undefined, 300_000);
      } finally {
        sub?.kill();
        p.kill();
      }
    }),
  );
}

/** fedora_messaging.api.publish one at a time, confirmed and persisted; per repetition {rate, p50_us, p99_us}. */
export function fedoraMessagingPublish(ctx) {
  return ctx.memo("py.fm_publish", () =>
    repeat(ctx.reps, async () => {
      const args = [py("fm_publish.py"), "--src", ctx.fedoraMessagingSrc, "--url", AMQP_URL];
      const r = await runJson(PY, [...args, "--count", String(ctx.n(1000, 100))], {
        env: pyEnv(ctx.fedoraMessagingSrc),
      });
      ctx.versions.fedoraMessaging ??= `${r.version} (source tree ${ctx.fedoraMessagingSrc})`;
      return r;
    }),
  );
}

/**
 * `fedmsg-logger` and `fedora-messaging publish` as their console scripts run them, for the one-shot CLI
 * figure: [figure suffix, reference name, command, args, env] per given tree.
 * `relay`: the endpoint fedmsg-logger connects to (its relay_inbound); `topic`: the routing key of a
 * durable queue the caller binds, so that fedora-messaging's mandatory publish is routable.
 */
export function cliReferences(ctx, { relay, topic }) {
  const refs = [];
  if (!ctx.fedmsgSrc && !ctx.fedoraMessagingSrc) return refs;
  const dir = tempDir("herald-bench-peers-"); // removed at exit
  if (ctx.fedmsgSrc) {
    const cfg = join(dir, "fedmsg-config.py");
    writeFileSync(
      cfg,
      `config = dict(endpoints={"bench.herald": ["tcp://127.0.0.1:1"]}, relay_inbound=${JSON.stringify(relay)},\n` +
        `              sign_messages=False, validate_signatures=False, environment="prod",\n` +
        `              topic_prefix="org.fedoraproject")\n`,
    );
    const main = `import sys; sys.argv[0] = "fedmsg-logger"; from fedmsg.commands.logger import logger; sys.exit(logger())`;
    refs.push([
      "fedmsg_logger_src",
      "fedmsg-logger (fedmsg source tree)",
      PY,
      ["-c", main, "--config-filename", cfg, "--message", "{}", "--modname", "bench", "--topic", "cli"],
      pyEnv(ctx.fedmsgSrc),
    ]);
  }
  if (ctx.fedoraMessagingSrc) {
    const conf = join(dir, "fedora-messaging.toml");
    writeFileSync(conf, `amqp_url = "${AMQP_URL}"\npublish_exchange = "amq.topic"\n`);
    const msgFile = join(dir, "message.json");
    const env = pyEnv(ctx.fedoraMessagingSrc, { FEDORA_MESSAGING_CONF: conf });
    const main = `import sys; sys.argv[0] = "fedora-messaging"; from fedora_messaging.cli import cli; cli()`;
    refs.push([
      "fedora_messaging_src",
      "fedora-messaging publish (fedora-messaging source tree)",
      PY,
      ["-c", main, "--conf", conf, "publish", msgFile],
      env,
      // The file `publish` reads: one message as the package itself serializes it.
      () =>
        runJson(
          PY,
          [
            "-c",
            `import json, sys; from fedora_messaging import api; m = api.Message(topic=sys.argv[2], body={}); open(sys.argv[1], "w").write(api.dumps(m)); print(json.dumps({"ok": True}))`,
            msgFile,
            topic,
          ],
          { env },
        ),
    ]);
  }
  return refs;
}
