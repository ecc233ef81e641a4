// The node in its role's load balancer target groups: plan against the record in state.json,
// then register, deregister, or wait while ELB drains the node. The record is what makes an idle
// tick free: nothing changed, no ELBv2 call. Health stays the load balancer's job.
import { toAgentError } from "../core/errors.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import type { Elbv2 } from "../cloud/elbv2.ts";
import { DEFAULT_DRAIN_MS, planTargets, targetRef, type TargetAction, type TargetGroupBinding, type TargetsDesired } from "../plan/targets.ts";
import type { StateStore } from "../state/store.ts";
import type { ResourceStatus } from "../status/types.ts";

export interface TargetsContext {
  elbv2: Elbv2;
  store: StateStore;
  clock: Clock;
  log: Logger;
  /** Per group ARN, its deregistration delay in seconds, read once (DescribeTargetGroupAttributes). */
  delays: Map<string, number>;
  /** How often DescribeTargetHealth is asked while the node drains (default 1 s). */
  pollMs?: number;
}

export interface TargetsOutcome { planned: TargetAction[]; conditions: ResourceStatus[]; notices: string[] }

/** Plan and apply once. Never throws: a failed call is a not-ready condition of its group. */
export async function convergeTargets(ctx: TargetsContext, d: TargetsDesired, dryRun = false, signal?: AbortSignal): Promise<TargetsOutcome> {
  const plan = planTargets(d, ctx.store.get().targets ?? {}, ctx.clock.now());
  const notices: string[] = [];
  if (dryRun) return { planned: plan.actions, conditions: plan.conditions, notices };
  if (plan.forget.length) ctx.store.update((s) => { for (const arn of plan.forget) delete s.targets?.[arn]; });
  const failed = new Map<string, ResourceStatus>();
  const byArn = new Map(d.groups.map((g) => [g.arn, g]));
  for (const a of plan.actions) {
    if (failed.has(a.ref)) continue;
    try {
      await applyTarget(ctx, a, d.instanceId, byArn.get(a.arn), notices, signal);
    } catch (e) {
      const err = toAgentError(e);
      failed.set(a.ref, { ref: a.ref, ready: false, reason: err.reason, message: err.message });
    }
  }
  // After the actions: what the record says now (no call).
  const after = plan.actions.length ? planTargets(d, ctx.store.get().targets ?? {}, ctx.clock.now()).conditions : plan.conditions;
  return { planned: plan.actions, conditions: after.map((c) => failed.get(c.ref) ?? c), notices };
}

/**
 * Take the node out of every group it is registered in and wait for ELB to drain it (bounded by
 * each group's drain): before traffic is taken away (`agent pause --drain`, a restart without a
 * front). No call when the node is registered nowhere. Never throws.
 */
export async function drainTargets(ctx: TargetsContext, instanceId: string, signal?: AbortSignal): Promise<TargetsOutcome> {
  const known = ctx.store.get().targets ?? {};
  const groups: TargetGroupBinding[] = Object.entries(known).map(([arn, k]) => ({ arn, port: k.port, drainMs: k.drainMs ?? DEFAULT_DRAIN_MS }));
  return convergeTargets(ctx, { groups, instanceId, healthy: false, drain: true }, false, signal);
}

async function applyTarget(ctx: TargetsContext, a: TargetAction, instanceId: string, binding: TargetGroupBinding | undefined, notices: string[], signal?: AbortSignal): Promise<void> {
  const log = ctx.log.child("targets");
  const target = { id: instanceId, port: a.port };
  if (a.kind === "targets.register") {
    await ctx.elbv2.registerTarget(a.arn, target);
    ctx.store.update((s) => { (s.targets ??= {})[a.arn] = { port: a.port, state: "registered", since: ctx.clock.now(), drainMs: binding?.drainMs ?? DEFAULT_DRAIN_MS }; });
    log.info("registered", { group: a.arn, port: a.port });
  } else if (a.kind === "targets.deregister") {
    const delay = ctx.delays.get(a.arn) ?? await ctx.elbv2.deregistrationDelay(a.arn).catch(() => null);
    if (delay !== null) ctx.delays.set(a.arn, delay);
    if (delay !== null && delay * 1000 > a.drainMs) {
      const msg = `${targetRef(a.arn)}: its deregistration delay (${delay}s) is longer than drain (${Math.round(a.drainMs / 1000)}s): ` +
        `connections still open after ${Math.round(a.drainMs / 1000)}s are cut; lower the group's deregistration_delay.timeout_seconds or raise targetGroups[].drain`;
      notices.push(msg);
      log.warn("deregistration delay longer than drain", { group: a.arn, delaySeconds: delay, drainMs: a.drainMs });
    }
    await ctx.elbv2.deregisterTarget(a.arn, target);
    ctx.store.update((s) => { (s.targets ??= {})[a.arn] = { port: a.port, state: "draining", since: ctx.clock.now(), drainUntil: ctx.clock.now() + a.drainMs, drainMs: a.drainMs }; });
    log.info("deregistered, draining", { group: a.arn, port: a.port });
  } else {
    const until = ctx.store.get().targets?.[a.arn]?.drainUntil ?? a.until;
    let state = await ctx.elbv2.targetState(a.arn, target);
    while (state === "draining" && ctx.clock.now() < until && !signal?.aborted) {
      await ctx.clock.sleep(Math.min(ctx.pollMs ?? 1000, Math.max(1, until - ctx.clock.now())), signal).catch(() => {});
      state = await ctx.elbv2.targetState(a.arn, target);
    }
    if (state === "draining") {
      notices.push(`${targetRef(a.arn)} still drains ${instanceId} after the drain of ${Math.round((until - (ctx.store.get().targets?.[a.arn]?.since ?? until)) / 1000)}s: traffic is taken away anyway`);
    }
    ctx.store.update((s) => { if (s.targets?.[a.arn]?.state === "draining") delete s.targets[a.arn]; });
    log.info("drained", { group: a.arn, port: a.port, state });
  }
}
