import type { HeraldConfig, LegacyStage } from "../config/schema.js";
import { formatDuration, parseDuration } from "../config/units.js";
import { loadLegacyConfig } from "../legacy/config/load.js";
import { evidenceProblem, loadEvidence, planCutover, restore, retire } from "../shim/cutover.js";
import type { EvidenceFile } from "../shim/evidence.js";
import { resolvePlan } from "../shim/services.js";
import { EXIT, noMore, out, parse, UsageError } from "./args.js";
import { context } from "./context.js";

const USAGE = `usage: herald cutover status [--json]
       herald cutover plan [--json]
       herald cutover retire SERVICE [--grace DURATION] [--dry-run]
       herald cutover restore SERVICE [--dry-run]

Move fedmsg services off their old ports with evidence (docs/migration.md). status: each service's stage,
its legacy ports, who is connected, when last seen, which topic prefixes they subscribe to. plan: what can
move next. retire: close a bridged service's old ports; refused (exit 1) while anyone is connected or was
seen within the grace period (default legacy.grace). restore: bring the ports back (stage bridged).
retire/restore edit the config file (comments kept) and SIGHUP the running shim; every action is logged
to <dataDir>/cutover.log.`;

export async function cutover(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    { json: { type: "boolean" }, grace: { type: "string" }, "dry-run": { type: "boolean" } },
    USAGE,
  );
  if (values.help || sub === undefined || sub === "--help" || sub === "-h") {
    out(USAGE);
    return sub === undefined ? EXIT.usage : EXIT.ok;
  }
  if (!["status", "plan", "retire", "restore"].includes(sub))
    throw new UsageError(`unknown subcommand 'cutover ${sub}'\n\n${USAGE}`);
  noMore(positionals.slice(sub === "status" || sub === "plan" ? 0 : 1), USAGE);
  const ctx = context(values.config);
  const stages = await currentStages(ctx.config);
  const ev = loadEvidence(ctx.config);
  if (sub === "status") {
    out(
      values.json
        ? JSON.stringify({ stages: Object.fromEntries(stages), evidence: ev ?? null }, null, 2)
        : renderStatus(stages, ev),
    );
    return EXIT.ok;
  }
  if (sub === "plan") {
    const plan = planCutover(ctx.config, stages, ev);
    if (values.json) out(JSON.stringify(plan, null, 2));
    else
      for (const p of plan) {
        out(`${p.service.padEnd(24)} ${p.stage.padEnd(8)} -> ${p.next.padEnd(6)} ${p.reason}`);
        for (const l of p.listeners) out(`${" ".repeat(26)}listening: ${l}`);
      }
    return EXIT.ok;
  }
  const service = positionals[0];
  if (!service) throw new UsageError(`cutover ${sub} needs a SERVICE name\n\n${USAGE}`);
  const stage = stages.get(service);
  if (!stage)
    throw new UsageError(
      `unknown service '${service}': known are ${[...stages.keys()].join(", ") || "none"}`,
    );
  const o = {
    config: ctx.config,
    file: ctx.file,
    service,
    stage,
    dryRun: values["dry-run"] ?? false,
    ...(values.grace !== undefined ? { graceMs: graceFlag(values.grace) } : {}),
  };
  const r = sub === "retire" ? retire(o) : restore(o);
  out(
    r.dryRun
      ? `dry run: ${service} could be ${sub === "retire" ? "retired" : "restored"} (${r.reason}); nothing changed`
      : `${service}: ${sub === "retire" ? "retired" : "restored to bridged"} (${r.reason}). ${r.signalled}`,
  );
  return EXIT.ok;
}

/** Stages as configured: every service of the fedmsg config (default legacy) plus legacy.services. */
async function currentStages(config: HeraldConfig): Promise<Map<string, LegacyStage>> {
  const legacy = config.legacy.config ? await loadLegacyConfig(config.legacy.config) : undefined;
  const plan = resolvePlan(config, legacy);
  return new Map([...plan.services.values()].map((s) => [s.name, s.stage]));
}

function renderStatus(stages: Map<string, LegacyStage>, ev: EvidenceFile | undefined): string {
  const now = Date.now();
  const lines: string[] = [];
  const problem = evidenceProblem(ev, now);
  lines.push(
    problem ? `evidence: ${problem}` : `evidence from shim pid ${ev!.pid}, written ${ev!.updatedAt}`,
  );
  lines.push("");
  lines.push(row(["SERVICE", "STAGE", "PORT", "SUBS", "LAST SEEN", "PREFIXES"]));
  for (const [name, stage] of stages) {
    const s = ev?.services[name];
    const shown = s && s.stage !== stage ? `${stage} (shim: ${s.stage})` : stage;
    const ing = s?.ingest;
    lines.push(
      row([
        name,
        shown,
        "",
        "",
        ing?.lastSeenAt ? `ingest ${agoText(ing.lastSeenAt, now)}` : "",
        ing ? `ingested ${ing.ingested}, dup ${ing.duplicates}, malformed ${ing.malformed}` : "",
      ]),
    );
    for (const p of Object.values(s?.ports ?? {})) {
      const prefixes = (p.connected > 0 ? p.prefixes : p.prefixesSeen)
        .map((x) => JSON.stringify(x))
        .join(" ");
      lines.push(
        row([
          "",
          p.bound ? (p.serving ? "serving" : "bound") : "closed",
          p.endpoint,
          String(p.connected),
          p.connected > 0 ? "now" : p.lastSeenAt ? agoText(p.lastSeenAt, now) : "never",
          prefixes || "-",
        ]),
      );
    }
  }
  if (ev?.relayInbound)
    lines.push(
      `relay_inbound ${ev.relayInbound.endpoint}: ${ev.relayInbound.bound ? "bound" : "NOT bound"}, ingested ${ev.relayInbound.ingested}`,
    );
  return lines.join("\n");
}

const agoText = (iso: string, now: number): string =>
  `${formatDuration(Math.max(0, Math.round((now - Date.parse(iso)) / 1000) * 1000))} ago`;

function row(cols: string[]): string {
  const widths = [22, 18, 26, 5, 16, 0];
  return cols
    .map((c, i) => (widths[i] ? c.padEnd(widths[i]!) : c))
    .join(" ")
    .trimEnd();
}

/** --grace is a flag: a bad value is a usage error (exit 2) that names it, not a configuration error. */
function graceFlag(value: string): number {
  try {
    return parseDuration(value);
  } catch (err) {
    throw new UsageError(`--grace: ${(err as Error).message}`);
  }
}
