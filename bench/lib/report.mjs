// Output: one JSON line per figure, a readable table, and a dated section appended to bench/RESULTS.md.
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { ROOT } from "./util.mjs";

export const RESULTS = resolve(ROOT, "bench", "RESULTS.md");

const COLS = [
  ["figure", (r) => r.figure],
  ["value", (r) => fmt(r.value)],
  ["unit", (r) => r.unit ?? ""],
  ["reference", (r) => fmt(r.reference)],
  ["ratio", (r) => fmt(r.ratio)],
  ["target", (r) => r.target ?? ""],
  ["met", (r) => (r.met === null ? "-" : r.met ? "met" : "MISSED")],
  ["p50 us", (r) => fmt(r.p50_us)],
  ["p99 us", (r) => fmt(r.p99_us)],
  ["min", (r) => fmt(r.min)],
  ["max", (r) => fmt(r.max)],
  ["reps", (r) => String(r.reps)],
];

function fmt(x) {
  if (x === null || x === undefined) return "";
  if (typeof x !== "number") return String(x);
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString("en-US");
  return String(x);
}

export function printJsonLine(rec) {
  process.stdout.write(`${JSON.stringify(rec)}\n`);
}

export function textTable(records) {
  const rows = records.map((r) => COLS.map(([, f]) => f(r)));
  const widths = COLS.map(([h], i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  return [line(COLS.map(([h]) => h)), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function mdTable(records) {
  const head = `| ${COLS.map(([h]) => h).join(" | ")} |`;
  const sep = `|${COLS.map(() => "---").join("|")}|`;
  const rows = records.map((r) => `| ${COLS.map(([, f]) => f(r).replaceAll("|", "\\|")).join(" | ")} |`);
  return [head, sep, ...rows].join("\n");
}

export function appendResults({
  started,
  elapsedSec,
  command,
  machine,
  versions,
  records,
  profiles,
  loadEnd,
}) {
  if (!existsSync(RESULTS))
    writeFileSync(
      RESULTS,
      "# herald benchmark results\n\nAppended by `npm run bench` (see bench/README.md). Newest last. Targets are ratios to\nreferences measured in the same run; absolute numbers drift with the machine's load.\n",
    );
  const notes = records.filter((r) => r.note).map((r) => `- **${r.figure}**: ${r.note}`);
  const md = [
    "",
    `## ${started.toISOString()} — \`${command}\``,
    "",
    `Machine: ${machine.cores} cores, ${machine.cpu}, ${machine.memory_gb} GiB, Linux ${machine.kernel}; fsync probe (${machine.fsync_probe ?? "4 KiB overwrite at offset 0 + fsync"}) in ${machine.fsync_dir}: p50 ${machine.fsync_p50_us} us, p99 ${machine.fsync_p99_us} us; first touch of a fresh 4 KiB page ${machine.first_touch_us_per_page ?? "?"} us.`,
    `Load average (1/5/15 min) at start ${machine.loadavg_start.join(" / ")}, at end ${loadEnd.join(" / ")} — the machine was shared with other jobs, so absolute numbers are noisy; the ratios compare runs made minutes apart under the same load. Run time ${Math.round(elapsedSec)} s.`,
    "",
    `Versions: ${Object.entries(versions)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}.`,
    "",
    mdTable(records),
    "",
    ...notes,
    ...profileMarkdown(profiles),
    "",
  ].join("\n");
  appendFileSync(RESULTS, md);
  // `npm run lint` checks bench/** and Biome formats Markdown tables: keep the file lint-clean.
  spawnSync(resolve(ROOT, "node_modules", ".bin", "biome"), ["format", "--write", RESULTS], {
    stdio: "ignore",
  });
}

function profileMarkdown(profiles) {
  if (profiles.length === 0) return [];
  const out = ["", "### Where the time goes (missed figures, `node --cpu-prof`)"];
  for (const p of profiles) {
    const who = p.process ?? "the broker";
    out.push("", `**${p.group}** (${p.figures.join(", ")}), profile of ${who} \`${p.file}\`:`, "");
    if (p.error) {
      out.push(`profile failed: ${p.error}`);
      continue;
    }
    out.push("| self ms | % | function |", "|---|---|---|");
    for (const t of p.top) out.push(`| ${t.ms} | ${t.pct} | \`${t.fn}\` |`);
    if (p.comment) out.push("", p.comment);
  }
  return out;
}
