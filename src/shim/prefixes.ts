/**
 * Topic prefixes subscribed on a legacy port, as the shim keeps and shows them. Anyone who reaches a bridged
 * or watched port may subscribe to anything, as often as they like: a scanner, or a consumer whose
 * subscriptions change, must not make the evidence file, `herald cutover status` or a log line grow
 * without bound. The prefixes only say who used a port; whether anyone did (connected, lastSeenAt) is
 * what cutover decides on, and that is kept whole.
 */

/** Distinct prefixes kept per port (and per retired service's watch): the newest ones. */
export const PREFIXES_KEPT = 200;
/** A longer prefix is kept cut to this many characters, marked with "…". */
export const PREFIX_MAX_CHARS = 256;
/** Prefixes named in one log line or line of `herald cutover` output; the rest is "and N more". */
export const PREFIXES_SHOWN = 10;
/** Characters of each prefix named there. */
const SHOWN_CHARS = 80;

const cut = (p: string, max: number): string => (p.length <= max ? p : `${p.slice(0, max)}…`);

/**
 * The newest PREFIXES_KEPT distinct prefixes (seeing one again makes it the newest), each cut to
 * PREFIX_MAX_CHARS, and how many were let go to keep them: `more` (a prefix seen again after it was let go
 * is kept again and, let go again, counted again, so it counts prefix sightings rather than distinct ones).
 */
export class KeptPrefixes {
  private readonly kept = new Set<string>();
  more: number;

  constructor(initial: Iterable<string> = [], more = 0) {
    this.more = Math.max(0, Number.isFinite(more) ? more : 0);
    for (const p of initial) if (typeof p === "string") this.add(p);
  }

  add(prefix: string): void {
    const p = cut(prefix, PREFIX_MAX_CHARS);
    if (this.kept.delete(p)) {
      this.kept.add(p);
      return;
    }
    this.kept.add(p);
    if (this.kept.size <= PREFIXES_KEPT) return;
    const oldest = this.kept.values().next().value;
    if (oldest !== undefined) this.kept.delete(oldest);
    this.more++;
  }

  get size(): number {
    return this.kept.size;
  }

  sorted(): string[] {
    return [...this.kept].sort();
  }
}

/**
 * A list of prefixes (all of them: a port's live subscriptions) as the evidence keeps it: the first
 * PREFIXES_KEPT in order, cut, and how many more there were.
 */
export function capPrefixes(all: readonly string[]): { prefixes: string[]; more: number } {
  const prefixes = all.slice(0, PREFIXES_KEPT).map((p) => cut(p, PREFIX_MAX_CHARS));
  return { prefixes, more: Math.max(0, all.length - prefixes.length) };
}

/**
 * Prefixes for a person: the first PREFIXES_SHOWN, quoted and cut to a readable length, then "and N more"
 * (those not shown plus `more`, the ones not kept). "" when there are none at all.
 */
export function prefixText(prefixes: readonly string[], more = 0, separator = ", "): string {
  const shown = prefixes.slice(0, PREFIXES_SHOWN).map((p) => JSON.stringify(cut(p, SHOWN_CHARS)));
  const rest = prefixes.length - shown.length + more;
  if (rest > 0) shown.push(shown.length > 0 ? `and ${rest} more` : `${rest} not kept`);
  return shown.join(separator);
}
