// Restart decisions: whether and when a process that exited starts again, and whether it is
// crash-looping. Pure: a function of the policy, the history and the times it is given.
// Retries never stop for good: the delay grows to the cap and stays there.

export type RestartPolicy = "always" | "on-failure" | "never";

export interface BackoffPolicy {
  /** Delay after the first quick exit of a series (default: baseMs); like systemd's 100 ms. */
  firstMs?: number;
  baseMs: number;          // delay after the second quick exit; it doubles from there
  capMs: number;           // the delay never grows past this
  resetAfterMs: number;    // a run at least this long is "stable": the count starts again
  crashLoopAfter: number;  // this many quick exits in a row => ProcessCrashLooping
}

// A process that crashes once is back within 100 ms of its exit (systemd: RestartSec=100ms): 50 ms
// of delay leaves room for the spawn and two state.json writes. One that keeps
// crashing waits 1 s, 2 s, 4 s ... so a crash loop costs the node little.
export const DEFAULT_BACKOFF: BackoffPolicy = { firstMs: 50, baseMs: 1000, capMs: 60_000, resetAfterMs: 30_000, crashLoopAfter: 3 };

/** Consecutive quick exits so far; 0 after a stable run. */
export interface BackoffState {
  quickExits: number;
}

export interface ExitFacts {
  startedAt: number;       // epoch ms the run began (or the start was attempted)
  exitedAt: number;
  code: number | null;
  signal: string | null;
  /** true when the agent asked it to stop (a stop or a replacement): never a restart reason. */
  requested: boolean;
  /** true when the agent stopped it because health checks failed after it had been healthy. */
  unhealthy?: boolean;
}

export interface RestartDecision {
  restart: boolean;
  delayMs: number;
  state: BackoffState;
  crashLooping: boolean;
}

/** Did this exit fail? A clean exit is code 0 without a signal. */
export const exitFailed = (e: Pick<ExitFacts, "code" | "signal">): boolean => e.code !== 0 || e.signal !== null;

/** Whether the restart policy wants a new run after this exit (ignoring timing). */
export function wantsRestart(policy: RestartPolicy, exit: ExitFacts): boolean {
  if (exit.requested) return false;
  if (exit.unhealthy) return policy !== "never";
  if (policy === "always") return true;
  if (policy === "on-failure") return exitFailed(exit);
  return false;
}

/**
 * Decide what follows an exit. A run shorter than resetAfterMs is a quick exit and lengthens the
 * delay (first, base, 2*base, 4*base ... capped); a stable run resets the count first, so the
 * next delay is `first` again. Deterministic: no clock and no randomness inside.
 */
export function decideRestart(bp: BackoffPolicy, state: BackoffState, policy: RestartPolicy, exit: ExitFacts): RestartDecision {
  const ranMs = Math.max(0, exit.exitedAt - exit.startedAt);
  const stable = ranMs >= bp.resetAfterMs;
  const quickExits = stable ? 1 : state.quickExits + 1;
  const next: BackoffState = { quickExits };
  const restart = wantsRestart(policy, exit);
  return {
    restart,
    delayMs: restart ? backoffDelay(bp, quickExits) : 0,
    state: next,
    crashLooping: !stable && quickExits >= bp.crashLoopAfter,
  };
}

/** The delay before start number n (n >= 1) of a series of quick exits: first, then base doubling. */
export function backoffDelay(bp: BackoffPolicy, n: number): number {
  if (n <= 0) return 0;
  if (bp.firstMs !== undefined) {
    if (n === 1) return Math.min(bp.capMs, bp.firstMs);
    n--;
  }
  const exp = Math.min(n - 1, 40); // 2^40 * base overflows any sane cap already
  return Math.min(bp.capMs, bp.baseMs * 2 ** exp);
}
