// Health decisions from check results: N consecutive passes make a process healthy; `fail`
// failures within the last `window` checks make it unhealthy. Pure: results and times in,
// state out. Readiness (first healthy) gates a replacement; liveness (unhealthy after having
// been healthy) makes the supervisor restart the process.

export interface HealthThresholds {
  pass: number;
  fail: number;
  window: number;
}

export interface HealthState {
  healthy: boolean;
  everHealthy: boolean;
  consecutivePasses: number;
  recent: boolean[];       // the last `window` results, oldest first
  lastError: string | null;
}

export const initialHealth = (): HealthState =>
  ({ healthy: false, everHealthy: false, consecutivePasses: 0, recent: [], lastError: null });

/** Fold one check result into the state. Never mutates its input. */
export function recordCheck(t: HealthThresholds, s: HealthState, ok: boolean, error: string | null = null): HealthState {
  const recent = [...s.recent, ok].slice(-Math.max(1, t.window));
  const consecutivePasses = ok ? s.consecutivePasses + 1 : 0;
  const failures = recent.filter((r) => !r).length;
  let healthy = s.healthy;
  if (!healthy && consecutivePasses >= t.pass) healthy = true;
  else if (healthy && failures >= t.fail) healthy = false;
  return { healthy, everHealthy: s.everHealthy || healthy, consecutivePasses, recent, lastError: ok ? null : error };
}

/** Liveness: the process was healthy and is not any more, so it should be restarted. */
export const livenessFailed = (s: HealthState): boolean => s.everHealthy && !s.healthy;

/** Without a health check, a process is healthy once it has been up for minUptime. */
export function upLongEnough(startedAt: number | null, now: number, minUptimeMs: number): boolean {
  return startedAt !== null && now - startedAt >= minUptimeMs;
}

/** Readiness deadline: has a process that is not yet healthy run out of time? */
export function pastDeadline(startedAt: number, now: number, deadlineMs: number): boolean {
  return now - startedAt >= deadlineMs;
}
