// The agent's own metrics, as ready-made handles the loop and the supervisor update. Names and
// labels here are a contract with dashboards and alerts: add, never rename.
import { Registry, type Counter, type Gauge, type Histogram } from "./registry.ts";

export type TickResult = "ok" | "error";
export type DeployResult = "success" | "rolled_back" | "failed";

export interface AgentMetrics {
  registry: Registry;
  up: Gauge;                       // agent_up 1 while the daemon runs
  ticks: Counter;                  // agent_ticks_total{result}
  tickDuration: Histogram;         // agent_tick_duration_seconds
  deploys: Counter;                // agent_deploys_total{result}
  currentCommit: Gauge;            // agent_current_commit_info{commit,role,environment} 1
  processRestarts: Counter;        // agent_process_restarts_total{process}
  lastSuccessfulSync: Gauge;       // agent_last_successful_sync_timestamp_seconds
  paused: Gauge;                   // agent_paused 1 while `agent pause` holds
  buildInfo: Gauge;                // agent_build_info{version} 1

  /** Count one tick and its duration; on success also stamps the last successful sync. */
  recordTick(result: TickResult, durationMs: number, at: number): void;
  /** Replace the commit info series (only one commit is current). */
  setCurrentCommit(commit: string | null, role: string | null, environment: string | null): void;
}

/** Create the agent's metrics in a fresh registry (or the one given). */
export function createAgentMetrics(opts: { version: string; registry?: Registry }): AgentMetrics {
  const r = opts.registry ?? new Registry();
  const m = {
    registry: r,
    up: r.gauge("agent_up", "1 while the agent daemon runs."),
    buildInfo: r.gauge("agent_build_info", "The agent's version; always 1.", ["version"]),
    ticks: r.counter("agent_ticks_total", "Reconcile ticks, by result (ok or error).", ["result"]),
    tickDuration: r.histogram("agent_tick_duration_seconds", "How long a reconcile tick took.",
      [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900]),
    deploys: r.counter("agent_deploys_total", "Deploys of a new commit, by result (success, rolled_back, failed).", ["result"]),
    currentCommit: r.gauge("agent_current_commit_info", "The commit this node runs; always 1.", ["commit", "role", "environment"]),
    processRestarts: r.counter("agent_process_restarts_total", "Restarts of a supervised process by the agent.", ["process"]),
    lastSuccessfulSync: r.gauge("agent_last_successful_sync_timestamp_seconds", "When a tick last succeeded (Unix time)."),
    paused: r.gauge("agent_paused", "1 while converging is paused with `agent pause`."),
  };
  m.up.set(1);
  m.paused.set(0);
  m.buildInfo.set(1, { version: opts.version });
  for (const result of ["ok", "error"]) m.ticks.inc({ result }, 0);
  for (const result of ["success", "rolled_back", "failed"]) m.deploys.inc({ result }, 0);
  return {
    ...m,
    recordTick(result, durationMs, at) {
      m.ticks.inc({ result });
      m.tickDuration.observe(durationMs / 1000);
      if (result === "ok") m.lastSuccessfulSync.set(Math.floor(at / 1000));
    },
    setCurrentCommit(commit, role, environment) {
      m.currentCommit.reset();
      if (commit) m.currentCommit.set(1, { commit, role: role ?? "", environment: environment ?? "" });
    },
  };
}
