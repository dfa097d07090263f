// One figure record: the median of the repetitions with min and max, its reference from the same run,
// the ratio and whether the target was met.
import { median, sig } from "./util.mjs";

/**
 * @param o.figure   name, e.g. "single.durable_vs_limit"
 * @param o.values   one number per repetition (herald's, or the raw limit's for reference-only figures)
 * @param o.unit     "msg/s", "us", "ms", "MB", ...
 * @param o.reference  {name, value} measured in the same run, or undefined
 * @param o.target   {kind: "ratio>=", x} | {kind: "ratio<=", x} | {kind: "value<", x} | {kind: "value<=", x} | undefined
 * @param o.errors   messages of the measured load that were refused or failed (summed over repetitions):
 *                   the rates count acknowledged messages only, and a figure with a target is not met
 *                   while any failed, whatever its ratio (a broker refusing fast would otherwise look fast)
 * @param o.firstError  the first such error's text, for the note
 * @param o.delivered   {got, expected} of the subscriber side (worst socket of the worst repetition), and
 * @param o.referenceDelivered  the same for the reference: a rate of whatever arrived is not a rate of the
 *                   load, so when either side lost messages the figure keeps its values but gives no ratio
 * @param o.problems  further reasons the measurement does not show what the figure claims (e.g. a backlog
 *                   smaller than its nominal size): each makes a targeted figure not met and opens the note
 */
export function figure(o) {
  const v = o.values.filter((x) => Number.isFinite(x));
  const value = v.length ? median(v) : null;
  const ref = o.reference?.value;
  const problems = [...(o.problems ?? [])];
  if (o.errors > 0)
    problems.push(
      `${o.errors} messages of the measured load refused or failed${o.firstError ? ` (first: ${o.firstError})` : ""}, not counted in the rate`,
    );
  const lost = [];
  if (o.delivered && o.delivered.got < o.delivered.expected)
    lost.push(`herald side delivered ${o.delivered.got}/${o.delivered.expected}`);
  if (o.referenceDelivered && o.referenceDelivered.got < o.referenceDelivered.expected)
    lost.push(`reference delivered ${o.referenceDelivered.got}/${o.referenceDelivered.expected}`);
  const comparable = lost.length === 0;
  const ratio = comparable && value !== null && Number.isFinite(ref) && ref !== 0 ? value / ref : null;
  const rec = {
    figure: o.figure,
    value: value === null ? null : sig(value),
    unit: o.unit,
    reference: Number.isFinite(ref) ? sig(ref) : null,
    reference_name: o.reference?.name ?? null,
    ratio: ratio === null ? null : sig(ratio, 3),
    target: targetText(o.target),
    met: met(o.target, value, ratio),
    p50_us: o.p50_us ?? null,
    p99_us: o.p99_us ?? null,
    min: v.length ? sig(Math.min(...v)) : null,
    max: v.length ? sig(Math.max(...v)) : null,
    reps: v.length,
  };
  if (o.errors > 0) rec.errors = o.errors;
  if (o.delivered) rec.delivered = fraction(o.delivered);
  if (o.referenceDelivered) rec.reference_delivered = fraction(o.referenceDelivered);
  if (!comparable && Number.isFinite(ref))
    problems.push(`no ratio: messages lost (${lost.join(", ")}), so a receive rate is not the load's rate`);
  if (problems.length > 0 && rec.met !== null) rec.met = false;
  const note = [...problems, ...(o.note ? [o.note] : [])].join("; ");
  if (note) rec.note = note;
  if (o.profileGroup) rec.profile_group = o.profileGroup;
  return rec;
}

/** Delivered fraction of a subscriber side (worst socket, worst repetition), 4 significant figures. */
function fraction({ got, expected }) {
  return expected > 0 ? sig(got / expected) : null;
}

/**
 * The errors of a load's repetitions (herald-pub.mjs results, or anything with `errors` and `firstError`),
 * as figure() options: spread them into every figure built from that load.
 */
export function loadErrors(reps) {
  return {
    errors: reps.reduce((a, r) => a + (r.errors ?? 0), 0),
    firstError: reps.find((r) => r.firstError)?.firstError,
  };
}

/** A figure that could not be measured: reported with the reason, never failing the run. */
export function notMeasured(name, reason) {
  return {
    figure: name,
    value: null,
    unit: null,
    reference: null,
    reference_name: null,
    ratio: null,
    target: null,
    met: null,
    p50_us: null,
    p99_us: null,
    min: null,
    max: null,
    reps: 0,
    note: `not measured: ${reason}`,
  };
}

function targetText(t) {
  if (!t) return null;
  switch (t.kind) {
    case "ratio>=":
      return `ratio >= ${t.x}`;
    case "ratio<=":
      return `ratio <= ${t.x}`;
    case "value<":
      return `< ${t.x}`;
    case "value<=":
      return `<= ${t.x}`;
    case "value>=":
      return `>= ${t.x}`;
    default:
      return String(t.kind);
  }
}

function met(t, value, ratio) {
  if (!t) return null;
  switch (t.kind) {
    case "ratio>=":
      return ratio === null ? false : ratio >= t.x;
    case "ratio<=":
      return ratio === null ? false : ratio <= t.x;
    case "value<":
      return value === null ? false : value < t.x;
    case "value<=":
      return value === null ? false : value <= t.x;
    case "value>=":
      return value === null ? false : value >= t.x;
    default:
      return null;
  }
}
