// The `targets` tick stage and the drain before a restart that takes traffic away: the node in
// its role's load balancer target groups (roles.<role>.targetGroups), registered once the
// processes are healthy. The planning and the calls are agent/plan/targets.ts and
// agent/converge/targets.ts.
import type { Role } from "../manifest/schema.ts";
import type { Ports } from "./ports.ts";
import { fixedPort } from "./processes.ts";
import type { TickContext } from "./tick.ts";

/** 10. After the address: register in the bound groups once healthy; leave the unbound ones. */
export async function targets(t: TickContext): Promise<void> {
  const { p, status } = t;
  if (!p.targets) return;
  const groups = (t.manifest.roles[t.roleName]?.targetGroups ?? []).map((g) => ({ arn: g.arn, port: g.port, drainMs: g.drain }));
  if (!groups.length && !Object.keys(p.store.get().targets ?? {}).length) return;
  const now = p.releases.current();
  const out = await p.targets.converge(t.identity, { groups, healthy: !!now && p.processes.healthy(now), drain: false }, t.signal);
  t.planned.push(...out.planned);
  status.resources.push(...out.conditions);
  status.notices.push(...out.notices);
}

/**
 * Before a stop-then-start restart of the role's processes (a cutover): a role with a process
 * that has no front leaves its target groups and waits for draining first. No call when the node
 * is registered nowhere; the `targets` stage registers it again once the new processes are healthy.
 */
export async function drainBeforeRestart(p: Ports, role: Role, env: Record<string, string>, signal?: AbortSignal): Promise<void> {
  if (!p.targets || !Object.keys(p.store.get().targets ?? {}).length) return;
  // Only a process that stops before its successor starts (no overlap) and has no front to hold traffic.
  if (!Object.values(role.processes).some((x) => !x.http && (!x.overlap || fixedPort(x, env)))) return;
  const out = await p.targets.drain(signal);
  for (const n of out.notices) p.log.child("targets").warn(n);
}
