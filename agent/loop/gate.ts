// The rollout gate: with `rollout:` in the manifest and an EC2 identity, a node cuts over to the
// pinned commit only when its wave is open (agent/fleet/planFleet over its peers' agent:* tags).
// Preparing early is allowed; the cutover waits, and is asked again right before it happens (the
// barrier). Peers are read from the RolloutStore port (the tags or the DynamoDB table: the port
// knows which) at most once per its interval, never on an idle tick. docs/fleet.md.
import { toAgentError } from "../core/errors.ts";
import { backoffMs } from "../fleet/budget.ts";
import { heldBy } from "../fleet/liveness.ts";
import { planFleet } from "../fleet/plan.ts";
import { emptyMemory, ROLLOUT_DEFAULTS, type FleetMemory, type FleetPlan, type Peer, type RolloutSettings } from "../fleet/types.ts";
import { pinnedCommit } from "../plan/release.ts";
import type { RolloutStatus } from "../status/types.ts";
import type { RolloutStore } from "./ports.ts";
import type { SlotAnswer } from "./rollout-table.ts";
import { retarget, type TickContext } from "./tick.ts";

/** What the gate remembers between ticks (the loop's Memory; memory and from also in state.json); a new pin starts it afresh. */
export interface FleetState {
  commit: string;
  memory: FleetMemory;
  nextReadAt: number;
  /** The nodes the last read found (tags: the environment's, all roles; DynamoDB: the role's records): the read interval's N. */
  nodes: number;
  /** Throttled reads in a row. */
  attempt: number;
  plan: FleetPlan | null;
  /** Every live peer of the role converged on the commit: nothing more to watch. */
  complete: boolean;
  /** What this node ran before it moved to the commit (onFailure: rollback goes back there). */
  from?: string | null;
}

const short = (c: string) => c.slice(0, 12);

/** The manifest's rollout with defaults, for the planner. */
export function rolloutSettings(t: TickContext): RolloutSettings | null {
  const r = t.manifest.rollout;
  if (!r) return null;
  return { waves: r.waves, bakeMs: r.bake ?? ROLLOUT_DEFAULTS.bakeMs, deadlineMs: r.deadline ?? ROLLOUT_DEFAULTS.deadlineMs,
    maxFailures: r.maxFailures ?? ROLLOUT_DEFAULTS.maxFailures, onFailure: r.onFailure ?? ROLLOUT_DEFAULTS.onFailure,
    ...(r.maxInFlight ? { maxInFlight: r.maxInFlight } : {}), store: r.store ?? "tags", leaseMs: r.lease ?? ROLLOUT_DEFAULTS.leaseMs };
}

/** The rollout store the manifest names, or null when this node cannot read it (the tags need the instance's EC2 identity). */
export const storeOf = (t: TickContext): RolloutStore | null => t.p.cloud?.rolloutStore?.(t.manifest.rollout?.store ?? "tags") ?? null;

/**
 * The gate stage (after plan): reads the peers when the interval has passed, plans, and holds back
 * release.cutover unless the decision is `move` to the pinned commit. Never reads when the node
 * runs the pinned commit (with onFailure: rollback, until the role's rollout is complete).
 */
export async function gate(t: TickContext): Promise<void> {
  const rollout = rolloutSettings(t), store = storeOf(t);
  if (!rollout || !store || t.want.pinned || !t.desiredOk) return;
  const C = pinnedCommit(t.manifest, t.roleName);
  const saved = t.p.store.get().rollout;
  // Another pin: its rollout is over (what the last read counted stays, for the first read's interval).
  if (saved && saved.commit !== C && !t.opts.dryRun) t.p.store.update((s) => { s.rollout = saved.nodes ? { commit: C, memory: emptyMemory(), from: null, nodes: saved.nodes } : null; });
  const cutover = t.relPlan.actions.some((a) => a.kind === "release.cutover");
  const fleet = stateFor(t, store, C);
  const watching = t.current === C && rollout.onFailure === "rollback" && !fleet.complete;
  if (!cutover && !watching) return;
  const halted = fleet.plan?.decision.kind === "halted";
  if (!halted && t.p.clock.now() >= fleet.nextReadAt) await read(t, store, fleet, rollout, C);
  const plan = fleet.plan;
  if (plan) t.status.rollout = rolloutStatus(plan);
  const d = plan?.decision;
  if (d?.kind === "move" && d.commit === C) return;
  if (d?.kind === "move" && d.reason === "Launch" && cutover && d.commit !== t.current && plan) return await launch(t, fleet, plan, d.commit, C);
  if (d?.kind === "rollback") {
    const back = fleet.from ?? null;
    t.status.notices.push(`rollout of ${short(C)} halted by ${d.by.join(", ")} (agent:failed=${short(C)}); onFailure: rollback${back && back !== C ? `: going back to ${short(back)}` : ": no earlier release known to go back to (it moved before this agent started)"}`);
    if (back && back !== C && !t.opts.dryRun) t.p.store.update((s) => { s.localPin = { commit: back, manifestCommit: C, at: t.p.clock.now() }; });
    return;
  }
  if (!cutover) return;
  hold(t);
  t.status.notices.push(notice(C, plan));
}

/**
 * The barrier: right before the cutover, read again; true when the decision is still `move` (and,
 * where the store enforces maxInFlight, this node holds a deploy slot). A node that would wait only
 * for a slot looks at the slots first (a small read) and reads the whole store only when one is free.
 */
export async function barrier(t: TickContext, commit: string): Promise<boolean> {
  const rollout = rolloutSettings(t), store = storeOf(t);
  if (!rollout || !store || t.want.pinned) return true;
  const C = pinnedCommit(t.manifest, t.roleName);
  if (commit !== C) return true;
  const fleet = stateFor(t, store, C);
  if (store.slotFree && rollout.maxInFlight && !t.opts.dryRun && !(await slotAnswered(t, rollout, store.slotFree.bind(store)))) {
    t.gateHeld = true;
    t.status.notices.push(notice(C, fleet.plan));
    return false;
  }
  await read(t, store, fleet, rollout, C);
  const plan = fleet.plan;
  if (plan) t.status.rollout = rolloutStatus(plan);
  if (plan?.decision.kind === "move" && plan.decision.commit === C && await slotTaken(t, store, rollout)) { fleet.from = t.current; save(t, fleet); return true; }
  t.gateHeld = true;
  t.status.notices.push(notice(C, plan));
  return false;
}

function stateFor(t: TickContext, store: RolloutStore, C: string): FleetState {
  const now = t.p.clock.now();
  if (t.mem.fleet?.commit === C) return t.mem.fleet;
  // An agent restarted mid-rollout carries on with what it saw (bakes, deadlines, the rollback target),
  // and paces its first read by the N its last read found (state.json), not by 1: a mass restart does not burst.
  const saved = t.p.store.get().rollout;
  const kept = saved?.commit === C && saved.memory?.commit === C ? saved : null;
  const nodes = t.mem.fleet?.nodes ?? saved?.nodes ?? 1;
  // The first read after a new pin comes at a random point of the first interval, not at once.
  const first = store.intervalMs(t.manifest.poll, nodes, 0) * t.p.clock.random();
  const s: FleetState = { commit: C, memory: kept ? structuredClone(kept.memory) : emptyMemory(), nextReadAt: now + Math.round(first),
    nodes, attempt: 0, plan: null, complete: false, from: kept?.from ?? null };
  if (!t.opts.dryRun) t.mem.fleet = s;
  else s.nextReadAt = now;         // `agent plan` reads at once
  return s;
}

async function read(t: TickContext, store: RolloutStore, fleet: FleetState, rollout: RolloutSettings, C: string): Promise<void> {
  const { p } = t;
  // The store's budget: tags, the account's Describe bucket; DynamoDB, the role partition's reads.
  const interval = () => store.intervalMs(t.manifest.poll, fleet.nodes, p.clock.random());
  let found;
  try {
    found = await store.peers(t.identity);
  } catch (e) {
    const err = toAgentError(e);
    const wait = err.reason === "Ec2Throttled" || err.reason === "DynamoDbThrottled" ? backoffMs(interval(), fleet.attempt++, p.clock.random()) : interval();
    fleet.nextReadAt = p.clock.now() + Math.max(wait, err.retry.kind === "after" ? err.retry.ms : 0);
    t.status.notices.push(`could not read the peers (${err.reason}): ${err.message}; the cutover waits`);
    return;
  }
  const now = p.clock.now();
  fleet.attempt = 0;
  let peers: Peer[] = found.filter((x) => x.role === t.roleName).map((x) => ({ id: x.id, state: x.state, launchedAt: x.launchedAt, tags: x.tags }));
  const planOf = () => planFleet({ self: t.identity.instanceId, current: t.current, pinned: C, peers, rollout, memory: fleet.memory, now });
  let plan = planOf();
  const dead = await prune(t, store, rollout, heldBy(plan.decision));
  if (dead.size) {                                   // records that outlived their instance: not peers, not in N
    found = found.filter((x) => !dead.has(x.id));
    peers = peers.filter((x) => !dead.has(x.id));
    plan = planOf();
  }
  fleet.nodes = Math.max(1, found.length);
  fleet.memory = plan.memory;
  fleet.plan = plan;
  save(t, fleet);
  fleet.complete = peers.length > 0 && peers.every((x) => x.tags["agent:commit"] === C && x.tags["agent:state"] === "converged");
  const d = plan.decision;
  fleet.nextReadAt = now + interval();
  if (d.kind === "wait" && d.reason === "Baking" && d.until !== null) fleet.nextReadAt = Math.max(fleet.nextReadAt, d.until);
}

/**
 * A store whose records can outlive their instance (DynamoDB) asks EC2 about the silent peers the
 * decision is held by; the ids it found gone (their records deleted). Never in a dry run (it deletes).
 */
async function prune(t: TickContext, store: RolloutStore, rollout: RolloutSettings, held: string[]): Promise<Set<string>> {
  if (!store.prune || !held.length || t.opts.dryRun) return new Set();
  try {
    const r = await store.prune(t.identity, held, { pollMs: t.manifest.poll, silentMs: rollout.leaseMs ?? ROLLOUT_DEFAULTS.leaseMs });
    if (r.notice) t.status.notices.push(r.notice);
    return new Set(r.dead);
  } catch (e) {
    const err = toAgentError(e);
    t.status.notices.push(`could not check whether silent peers still run (${err.reason}): ${err.message}`);
    return new Set();
  }
}

/** rollout.maxInFlight where the store enforces it (DynamoDB): hold a deploy slot (conditional write) before the cutover; otherwise nothing to take. */
async function slotTaken(t: TickContext, store: RolloutStore, rollout: RolloutSettings): Promise<boolean> {
  if (!store.slot || !rollout.maxInFlight || t.opts.dryRun) return true;
  return await slotAnswered(t, rollout, store.slot.bind(store));
}

/** Ask for a slot (take it, or only look); false, with a notice saying why, when the cutover must wait. */
async function slotAnswered(t: TickContext, rollout: RolloutSettings, ask: (id: TickContext["identity"], maxInFlight: number, leaseMs: number) => Promise<SlotAnswer>): Promise<boolean> {
  if (!rollout.maxInFlight) return true;
  try {
    const r = await ask(t.identity, rollout.maxInFlight, rollout.leaseMs ?? ROLLOUT_DEFAULTS.leaseMs);
    if (r.ok) return true;
    t.status.notices.push(`waiting for a deploy slot (maxInFlight ${rollout.maxInFlight}${r.for.length ? `, held by ${r.for.join(", ")}` : ", another node took the last one"})${r.until ? ` until ${new Date(r.until).toISOString()} at the latest` : ""}`);
  } catch (e) {
    const err = toAgentError(e);
    t.status.notices.push(`could not take a deploy slot (${err.reason}): ${err.message}; the cutover waits`);
  }
  return false;
}

/** What the planner needs over a restart, in state.json (written only when it changed). */
function save(t: TickContext, fleet: FleetState) {
  if (t.opts.dryRun) return;
  const next = { commit: fleet.commit, memory: fleet.memory, from: fleet.from ?? null, nodes: fleet.nodes };
  if (JSON.stringify(t.p.store.get().rollout ?? null) === JSON.stringify(next)) return;
  t.p.store.update((s) => { s.rollout = structuredClone(next); });
}

/**
 * A node launched mid-rollout (nothing to run, or a commit none of its converged peers runs):
 * deploy what they run, verified like any release, this tick; the pinned commit waits for its
 * wave. When that commit cannot be used here, the node simply waits.
 */
async function launch(t: TickContext, fleet: FleetState, plan: FleetPlan, commit: string, C: string): Promise<void> {
  const wave = `wave ${plan.wave + 1} of ${plan.waves}`;
  try {
    if (t.p.store.get().badCommits.includes(commit)) throw new Error("it failed on this node before");
    await retarget(t, commit);
  } catch (e) {
    hold(t);
    t.status.notices.push(`cannot start on the commit its peers run (${short(commit)}): ${toAgentError(e).message}; waiting for its wave (${wave}) of ${short(C)}`);
    return;
  }
  t.gateHeld = true;                         // held from C: for its peers it is converged on what it runs
  if (!t.opts.dryRun) fleet.nextReadAt = t.p.clock.now();   // the next tick plans again from what it then runs
  t.status.notices.push(`starting on the commit its peers run (${short(commit)}) until its wave (${wave}) of ${short(C)}`);
}

/** Keep preparing; take the cutover out of this tick's plan. */
function hold(t: TickContext) {
  t.gateHeld = true;
  t.relPlan = { ...t.relPlan, actions: t.relPlan.actions.filter((a) => a.kind !== "release.cutover") };
  const at = t.planned.findIndex((a) => a.kind === "release.cutover");
  if (at >= 0) t.planned.splice(at, 1);
}

export function rolloutStatus(plan: FleetPlan): RolloutStatus {
  const d = plan.decision;
  return {
    wave: plan.wave + 1, of: plan.waves, decision: d.kind,
    reason: d.reason,
    waitingFor: d.kind === "wait" ? d.for : [],
    until: d.kind === "wait" && d.until !== null ? new Date(d.until).toISOString() : null,
    haltedBy: d.kind === "halted" || d.kind === "rollback" ? d.by : [],
  };
}

function notice(C: string, plan: FleetPlan | null): string {
  if (!plan) return `rollout of ${short(C)}: waiting for the first read of the peers before the cutover`;
  const d = plan.decision, wave = `wave ${plan.wave + 1} of ${plan.waves}`;
  if (d.kind === "halted") {
    return `rollout of ${short(C)} halted by ${d.by.join(", ")} (${d.reason === "PeerFailed" ? `agent:failed=${short(C)}` : "neither converged nor failed within the deadline"}); this node stays on what it runs until the manifest pins another commit`;
  }
  if (d.kind === "wait") {
    const who = d.for.length ? d.for.join(", ") : "earlier waves";
    const what = d.reason === "Baking" ? `${who} to bake on ${short(C)}` : d.reason === "WaveFull" ? `room in the wave (deploying: ${who})` : `${who} to converge on ${short(C)}`;
    return `waiting for its wave (${wave}): for ${what}${d.until ? ` until ${new Date(d.until).toISOString()}` : ""}`;
  }
  return `rollout of ${short(C)}: ${wave}, not moving yet`;
}
