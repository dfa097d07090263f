import type { HeraldConfig, LegacyStage } from "../config/schema.js";
import { formatDuration, parseDuration } from "../config/units.js";
import { loadLegacyConfig } from "../legacy/config/load.js";
import {
  evidenceProblem,
  loadEvidence,
  loadEvidenceError,
  planCutover,
  restore,
  retire,
  watchLines,
} from "../shim/cutover.js";
import type { EvidenceFile, EvidenceWriteError, ServiceEvidence } from "../shim/evidence.js";
import { prefixText } from "../shim/prefixes.js";
import { resolvePlan } from "../shim/services.js";
import { EXIT, noMore, out, parse, UsageError } from "./args.js";
import { context } from "./context.js";

const USAGE = `usage: herald cutover status [--json]
       herald cutover plan [--json]
       herald cutover retire SERVICE [--grace DURATION [--force]] [--accept-past-subscribers] [--dry-run]
       herald cutover restore SERVICE [--dry-run]

Move fedmsg services off their old ports with evidence (docs/migration.md). status: each service's stage,
its legacy ports, who is connected, when last seen, which topic prefixes they subscribe to. plan: what
can move next, who listens, who was seen since the service was bridged. retire: close a bridged service's
old ports (with legacy.watchRetired, default 7d, they stay bound serving nothing, and old subscribers
that still come are logged and shown here); refused (exit 1) while anyone is connected, was seen within
the grace period (default legacy.grace; a shorter --grace needs --force), or was seen at all since the
service was bridged (unless --accept-past-subscribers), or its ports were watched for less than the grace
period. restore: reopen a retired service's ports (stage bridged); refused for a service in another
stage. retire/restore log the intent to <dataDir>/cutover.log, edit the config file (comments kept),
SIGHUP the running shim and wait for its evidence to confirm; a change the shim did not apply is set back
in the file (exit 1).`;

export async function cutover(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parse(
    rest,
    {
      json: { type: "boolean" },
      grace: { type: "string" },
      force: { type: "boolean" },
      "accept-past-subscribers": { type: "boolean" },
      "dry-run": { type: "boolean" },
    },
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
        : renderStatus(stages, ev, loadEvidenceError(ctx.config, ev)),
    );
    return EXIT.ok;
  }
  if (sub === "plan") {
    const plan = planCutover(ctx.config, stages, ev, Date.now(), {
      writeError: loadEvidenceError(ctx.config, ev),
    });
    if (values.json) out(JSON.stringify(plan, null, 2));
    else
      for (const p of plan) {
        out(`${p.service.padEnd(24)} ${p.stage.padEnd(8)} -> ${p.next.padEnd(6)} ${p.reason}`);
        for (const l of p.listeners) out(`${" ".repeat(26)}listening: ${l}`);
        for (const l of p.pastListeners) out(`${" ".repeat(26)}seen before: ${l}`);
        for (const l of p.watch ?? []) out(`${" ".repeat(26)}watch: ${l}`);
      }
    return EXIT.ok;
  }
  return change(sub as "retire" | "restore", positionals[0], values, ctx, stages);
}

/** retire/restore SERVICE: one line on stdout for what was done, warnings on stderr. */
async function change(
  sub: "retire" | "restore",
  service: string | undefined,
  values: { grace?: string; force?: boolean; "accept-past-subscribers"?: boolean; "dry-run"?: boolean },
  ctx: { config: HeraldConfig; file: string | undefined },
  stages: Map<string, LegacyStage>,
): Promise<number> {
  if (!service) throw new UsageError(`cutover ${sub} needs a SERVICE name\n\n${USAGE}`);
  const stage = stages.get(service);
  if (!stage)
    throw new UsageError(
      `unknown service '${service}': known are ${[...stages.keys()].join(", ") || "none"}`,
    );
  if (sub === "restore" && (values.grace !== undefined || values["accept-past-subscribers"] || values.force))
    throw new UsageError(`cutover restore takes only --dry-run\n\n${USAGE}`);
  if (values.force && values.grace === undefined)
    throw new UsageError(`--force only overrides a --grace shorter than legacy.grace\n\n${USAGE}`);
  const o = {
    config: ctx.config,
    file: ctx.file,
    service,
    stage,
    dryRun: values["dry-run"] ?? false,
    force: values.force ?? false,
    acceptPastSubscribers: values["accept-past-subscribers"] ?? false,
    ...(values.grace !== undefined ? { graceMs: graceFlag(values.grace) } : {}),
  };
  const r = sub === "retire" ? await retire(o) : await restore(o);
  const applied = [r.signalled, r.confirmed].filter(Boolean).join("; ");
  out(
    r.dryRun
      ? `dry run: ${service} could be ${sub === "retire" ? "retired" : "restored"} (${r.reason}); nothing changed`
      : `${service}: ${sub === "retire" ? "retired" : "restored to bridged"} (${r.reason}).${applied ? ` ${applied}` : ""}`,
  );
  return EXIT.ok;
}

/** Stages as configured: every service of the fedmsg config (default legacy) plus legacy.services. */
async function currentStages(config: HeraldConfig): Promise<Map<string, LegacyStage>> {
  const legacy = config.legacy.config ? await loadLegacyConfig(config.legacy.config) : undefined;
  const plan = resolvePlan(config, legacy);
  return new Map([...plan.services.values()].map((s) => [s.name, s.stage]));
}

function renderStatus(
  stages: Map<string, LegacyStage>,
  ev: EvidenceFile | undefined,
  writeError: EvidenceWriteError | undefined,
): string {
  const now = Date.now();
  const lines: string[] = [];
  const problem = evidenceProblem(ev, now, writeError);
  lines.push(
    problem
      ? `evidence: ${problem}`
      : `evidence from shim pid ${ev!.pid} (config ${ev!.configFile ?? "none"}), written ${ev!.updatedAt}`,
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
        ing ? ingestText(ing) : "",
      ]),
    );
    if (s?.pending) lines.push(`${"".padEnd(23)}held back: ${s.pending.stage} (${s.pending.reason})`);
    for (const l of s ? watchLines(name, s, now) : []) lines.push(`${"".padEnd(23)}watch: ${l}`);
    const watching = s?.stage === "retired";
    for (const p of Object.values(s?.ports ?? {})) {
      const prefixes =
        p.connected > 0
          ? prefixText(p.prefixes, p.prefixesMore, " ")
          : prefixText(p.prefixesSeen, p.prefixesSeenMore, " ");
      lines.push(
        row([
          "",
          p.bound ? (p.serving ? "serving" : watching ? "watching" : "bound") : "closed",
          p.endpoint,
          String(p.connected),
          p.connected > 0 ? "now" : p.lastSeenAt ? agoText(p.lastSeenAt, now) : "never",
          prefixes || "-",
        ]),
      );
    }
  }
  if (ev?.relayInbound) lines.push(relayText(ev.relayInbound));
  return lines.join("\n");
}

/** Disconnects include libzmq's drops of frames over the limit, which nothing else records. */
function relayText(r: NonNullable<EvidenceFile["relayInbound"]>): string {
  const parts = [`relay_inbound ${r.endpoint}: ${r.bound ? "bound" : "NOT bound"}`, `ingested ${r.ingested}`];
  if (r.malformed !== undefined) parts.push(`malformed ${r.malformed}`);
  if (r.disconnects !== undefined) parts.push(`disconnects ${r.disconnects}`);
  return parts.join(", ");
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

/**
 * Refused and dropped only when there are some: a shim whose broker refuses everything it ingests (say,
 * requireSignatures with no identity for the shim) must not look like one with nothing to ingest.
 */
function ingestText(ing: ServiceEvidence["ingest"]): string {
  const parts = [`ingested ${ing.ingested}, dup ${ing.duplicates}, malformed ${ing.malformed}`];
  if (ing.rejected > 0) parts.push(`REFUSED ${ing.rejected} (by the broker, for good: see its log)`);
  if (ing.dropped > 0) parts.push(`dropped ${ing.dropped}`);
  return parts.join(", ");
}
