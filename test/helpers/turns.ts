/**
 * Counts event-loop turns, to see how many messages a reader takes in one turn (what a received Buffer
 * holds is freed only from the event loop, and small messages should still be taken many to a turn).
 */
export function turnTracker(): { mark(): void; readonly marked: number; reset(): void; stop(): number } {
  let turns = 0;
  let ticking = true;
  const marks: number[] = [];
  const tick = (): void => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  return {
    mark: () => marks.push(turns),
    get marked() {
      return marks.length;
    },
    reset: () => {
      marks.length = 0;
    },
    /** Stop counting; the most messages marked in one turn. */
    stop(): number {
      ticking = false;
      const per = new Map<number, number>();
      for (const t of marks) per.set(t, (per.get(t) ?? 0) + 1);
      return Math.max(...per.values());
    },
  };
}
