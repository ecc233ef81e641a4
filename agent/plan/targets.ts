// The target group planner: is this node registered where the manifest binds its role? Pure.
// Desired: registered in every bound group once the processes are healthy, unless traffic is
// being taken away (`drain`: `agent pause --drain`, a stop-then-start restart). Known: what the
// node last did, recorded in state.json. Only a difference is an action, so an idle tick makes
// no ELBv2 call. Health stays the load balancer's job: unhealthy processes never deregister.
import type { ResourceStatus } from "../status/types.ts";
import type { ActionBase } from "./types.ts";

export interface TargetGroupBinding { arn: string; port: number; /** the longest wait for draining, ms */ drainMs: number }

/** What state.json remembers per target group ARN. */
export interface TargetRecord {
  port: number;
  state: "registered" | "draining";
  since: number;
  /** The binding's drain when it was registered: used when the binding is gone. */
  drainMs?: number;
  /** draining: the node stops waiting at this time (ms). */
  drainUntil?: number;
}

export interface TargetsDesired {
  groups: TargetGroupBinding[];
  instanceId: string;
  /** The running release's processes are all healthy. */
  healthy: boolean;
  /** Take traffic away from this node (pause --drain, a restart without a front). */
  drain: boolean;
}

export type TargetAction = ActionBase & { arn: string; port: number } & (
  | { kind: "targets.register" }
  | { kind: "targets.deregister"; drainMs: number }
  | { kind: "targets.wait-drain"; until: number }
);

export interface TargetsPlan {
  actions: TargetAction[];
  conditions: ResourceStatus[];
  /** Records that are over (drained past their deadline): drop them from state.json, no call. */
  forget: string[];
}

export const DEFAULT_DRAIN_MS = 30_000;

/** "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0a1b…" → "target-group/web". */
export function targetRef(arn: string): string {
  return `target-group/${/:targetgroup\/([^/]+)\//.exec(arn)?.[1] ?? arn}`;
}

const describe = (verb: string, arn: string, port: number, id: string) => `${verb} ${id}:${port} ${verb === "register" ? "with" : "from"} ${targetRef(arn)}`;

export function planTargets(d: TargetsDesired, known: Record<string, TargetRecord>, now: number): TargetsPlan {
  const actions: TargetAction[] = [];
  const conditions: ResourceStatus[] = [];
  const forget: string[] = [];
  const cond = (arn: string, ready: boolean, reason: string, message: string) => conditions.push({ ref: targetRef(arn), ready, reason, message });
  const act = (a: TargetAction) => actions.push(a);
  const takeAway = (arn: string, k: TargetRecord, drainMs: number) => {
    if (k.state === "registered") {
      act({ kind: "targets.deregister", ref: targetRef(arn), arn, port: k.port, drainMs, description: describe("deregister", arn, k.port, d.instanceId) });
      act({ kind: "targets.wait-drain", ref: targetRef(arn), arn, port: k.port, until: now + drainMs, description: `wait until ${targetRef(arn)} no longer drains ${d.instanceId} (at most ${Math.round(drainMs / 1000)}s)` });
    } else if ((k.drainUntil ?? 0) > now) {
      act({ kind: "targets.wait-drain", ref: targetRef(arn), arn, port: k.port, until: k.drainUntil!, description: `wait until ${targetRef(arn)} no longer drains ${d.instanceId}` });
    } else forget.push(arn);
  };
  const bound = new Set(d.groups.map((g) => g.arn));
  for (const g of d.groups) {
    const k = known[g.arn];
    // A record for another port is another target: take it away first.
    const same = k && k.port === g.port ? k : undefined;
    if (k && !same) takeAway(g.arn, k, g.drainMs);
    if (d.drain) {
      if (same) takeAway(g.arn, same, g.drainMs);
      cond(g.arn, true, "Deregistered", `${d.instanceId} is taken out of the group (draining for at most ${Math.round(g.drainMs / 1000)}s); \`agent resume\` registers it again`);
    } else if (same?.state === "registered") {
      cond(g.arn, true, "Registered", `${d.instanceId}:${g.port} is registered${d.healthy ? "" : " (processes unhealthy: the load balancer's health checks decide)"}`);
    } else if (d.healthy) {
      act({ kind: "targets.register", ref: targetRef(g.arn), arn: g.arn, port: g.port, description: describe("register", g.arn, g.port, d.instanceId) });
      cond(g.arn, false, "NotRegistered", `${d.instanceId}:${g.port} is not registered yet`);
    } else {
      cond(g.arn, false, "WaitingForHealthyProcesses", `${d.instanceId}:${g.port} is registered once the role's processes are healthy`);
    }
  }
  // Groups no longer bound (the role or the binding removed): take the node out of them.
  for (const [arn, k] of Object.entries(known)) {
    if (!bound.has(arn)) takeAway(arn, k, k.drainMs ?? DEFAULT_DRAIN_MS);
  }
  return { actions, conditions, forget };
}
