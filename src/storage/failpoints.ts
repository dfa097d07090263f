/**
 * Failpoints: named places in the code where a test can make the process crash, fail or stall on purpose,
 * so crash tests are deterministic (the etcd gofail / Vector approach) instead of relying on a random kill -9.
 *
 * Spec syntax (env `HERALD_FAILPOINTS`, or an explicit string): a comma list of `name=action[@N]`.
 * - `exit`      calls `process.exit(137)` (the status of a SIGKILL'd process), skipping every cleanup.
 * - `error`     throws a {@link FailpointError} that looks like an I/O error (code `EIO`).
 * - `sleep:MS`  blocks the thread for MS milliseconds (a slow fsync, a stalled broker).
 * `@N` fires the action only on the N-th hit of that point (1-based); without it, on every hit.
 *
 * Example: `HERALD_FAILPOINTS="outbox.before_commit=exit@3,outbox.after_commit=sleep:200"`.
 */

export type FailpointAction = { kind: "exit" } | { kind: "error" } | { kind: "sleep"; ms: number };

interface Rule {
  action: FailpointAction;
  /** Fire only on this hit (1-based); undefined = every hit. */
  onHit: number | undefined;
  hits: number;
}

/** The error thrown by the `error` action: shaped like a failed write/fsync. */
export class FailpointError extends Error {
  readonly code = "EIO";
  constructor(readonly point: string) {
    super(`EIO: injected I/O error at failpoint '${point}'`);
    this.name = "FailpointError";
  }
}

/** One set of failpoint rules with their own hit counters. */
export class Failpoints {
  private readonly rules = new Map<string, Rule>();

  constructor(spec: string | undefined) {
    for (const part of (spec ?? "").split(",")) {
      const item = part.trim();
      if (item === "") continue;
      const [name, rule] = parseItem(item);
      this.rules.set(name, rule);
    }
  }

  /** True when no failpoint is configured (the normal production case: `hit` is then a map lookup). */
  get empty(): boolean {
    return this.rules.size === 0;
  }

  /** Pass the named point: does nothing unless a rule for it says otherwise. */
  hit(name: string): void {
    const rule = this.rules.get(name);
    if (rule === undefined) return;
    rule.hits += 1;
    if (rule.onHit !== undefined && rule.hits !== rule.onHit) return;
    runAction(name, rule.action);
  }
}

function parseItem(item: string): [string, Rule] {
  const eq = item.indexOf("=");
  if (eq <= 0) throw badSpec(item);
  const name = item.slice(0, eq).trim();
  let actionText = item.slice(eq + 1).trim();
  let onHit: number | undefined;
  const at = actionText.lastIndexOf("@");
  if (at >= 0) {
    onHit = Number(actionText.slice(at + 1));
    if (!Number.isInteger(onHit) || onHit < 1) throw badSpec(item);
    actionText = actionText.slice(0, at);
  }
  return [name, { action: parseAction(actionText, item), onHit, hits: 0 }];
}

function parseAction(text: string, item: string): FailpointAction {
  if (text === "exit") return { kind: "exit" };
  if (text === "error") return { kind: "error" };
  if (text.startsWith("sleep:")) {
    const ms = Number(text.slice("sleep:".length));
    if (Number.isFinite(ms) && ms >= 0) return { kind: "sleep", ms };
  }
  throw badSpec(item);
}

function badSpec(item: string): Error {
  return new Error(
    `HERALD_FAILPOINTS item '${item}' is not valid: use name=exit|error|sleep:MS with an optional @N ` +
      `(e.g. outbox.before_commit=exit@3)`,
  );
}

function runAction(name: string, action: FailpointAction): void {
  switch (action.kind) {
    case "exit":
      // Straight out, like a SIGKILL: no finally blocks, no close handlers, no flushed cursors.
      process.exit(137);
      break;
    case "error":
      throw new FailpointError(name);
    case "sleep":
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, action.ms);
      break;
  }
}

let processWide: Failpoints | undefined;

/** The process-wide rules, read once from `HERALD_FAILPOINTS`. */
export function processFailpoints(): Failpoints {
  processWide ??= new Failpoints(process.env["HERALD_FAILPOINTS"]);
  return processWide;
}

/** Pass a named failpoint using the process-wide rules from `HERALD_FAILPOINTS`. */
export function failpoint(name: string): void {
  processFailpoints().hit(name);
}
