// One figure record: the median of the repetitions with min and max, its reference from the same run,
// the ratio and whether the target was met.
import { median, sig } from "./util.mjs";

/**
 * @param o.figure   name, e.g. "single.durable_vs_limit"
 * @param o.values   one number per repetition (herald's, or the raw limit's for reference-only figures)
 * @param o.unit     "msg/s", "us", "ms", "MB", ...
 * @param o.reference  {name, value} measured in the same run, or undefined
 * @param o.target   {kind: "ratio>=", x} | {kind: "ratio<=", x} | {kind: "value<", x} | {kind: "value<=", x} | undefined
 */
export function figure(o) {
  const v = o.values.filter((x) => Number.isFinite(x));
  const value = v.length ? median(v) : null;
  const ref = o.reference?.value;
  const ratio = value !== null && Number.isFinite(ref) && ref !== 0 ? value / ref : null;
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
  if (o.note) rec.note = o.note;
  if (o.profileGroup) rec.profile_group = o.profileGroup;
  return rec;
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
