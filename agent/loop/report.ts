// What `agent plan` shows: the actions a tick would take now, or why it is blocked. The same
// answer whether the daemon computes it (it owns the node) or the command does (no daemon).
import type { ActionBase } from "../plan/types.ts";
import type { Status } from "../status/types.ts";
import type { TickResult } from "./tick.ts";

export interface PlanReport {
  actions: ActionBase[];             // with each action's own data (commit, volume, ...)
  blocked: { reason: string; message: string } | null;
  desired: Status["desired"];
  current: Status["current"];
  /** The node's wave and what it waits for (manifest `rollout:`): a held cutover is not in `actions`. */
  rollout?: Status["rollout"];
}

export function planReport(r: TickResult): PlanReport {
  return {
    actions: r.actions,
    blocked: r.error ? { reason: r.error.reason, message: r.error.message } : null,
    desired: r.status.desired,
    current: r.status.current,
    ...(r.status.rollout ? { rollout: r.status.rollout } : {}),
  };
}
