// planFleet: may this node move to the pinned commit C now? Health-gated waves and the fleet-wide
// circuit breaker, decided from one read of the peers' tags and the reader's own memory of when it
// first saw things. Pure: no I/O, no clock (now is passed in), no randomness. docs/fleet.md.
import { rankOrder, waveOf, waveSizes } from "./rank.ts";
import type { Decision, FleetInput, FleetMemory, FleetPlan, Peer } from "./types.ts";

const LIVE = new Set(["pending", "running"]);

interface View { id: string; rank: number; wave: number; commit: string | null; state: string | null; failed: string | null }

/**
 * The decision for input.self, its wave k of n and the updated memory (pass it back next time).
 * Rules, in order: the breaker (maxFailures peers with agent:failed=C halt, or roll back a node on C
 * with onFailure: rollback); alone or already on C => move; a peer of an earlier wave due to move
 * that has neither converged nor failed on C within `deadline` halts; otherwise the node moves when
 * its wave is open (the earlier waves' share of peers converged on C for `bake`, reader's clock) and
 * fewer peers than the open wave's size are on C or deploying (and fewer than maxInFlight deploying). A node with no release (or one no
 * converged peer runs), told to wait, starts on the commit most of its converged peers run.
 */
export function planFleet(input: FleetInput): FleetPlan {
  const { self, pinned: C, now, rollout } = input;
  const byId = new Map(input.peers.map((p) => [p.id, p]));     // pages that overlap list a peer twice
  const live = [...byId.values()].filter((p) => LIVE.has(p.state) || p.id === self);
  if (!live.some((p) => p.id === self)) live.push({ id: self, state: "running", launchedAt: null, tags: {} });
  const order = input.order && input.order.length === live.length ? [...input.order] : rankOrder(C, live.map((p) => p.id));
  const sizes = waveSizes(rollout.waves, order.length);
  const rankOf = new Map(order.map((id, i) => [id, i]));
  const view = (p: Peer): View => {
    const rank = rankOf.get(p.id)!;
    return {
      id: p.id, rank, wave: waveOf(sizes, rank),
      commit: p.tags["agent:commit"] ?? null, state: p.tags["agent:state"] ?? null, failed: p.tags["agent:failed"] ?? null,
    };
  };
  const others = live.filter((p) => p.id !== self).map(view).sort((a, b) => a.rank - b.rank);
  const k = waveOf(sizes, rankOf.get(self)!);
  const legacy = live.filter((p) => p.id !== self && !p.tags["agent:version"]).map((p) => p.id).sort();

  const memory = remember(input.memory, C, now, others);
  const onC = (v: View) => v.commit === C && v.state === "converged";
  const inFlight = (v: View) => v.state === "deploying";
  const failedC = (v: View) => v.failed === C;
  const baked = (v: View) => memory.converged[v.id] !== undefined && memory.converged[v.id]! + rollout.bakeMs <= now;

  const bakedCount = others.filter(baked).length;
  let open = 0;
  while (open + 1 < sizes.length && bakedCount >= sizes[open]!) open++;
  const taken = others.filter((v) => onC(v) || inFlight(v)).length;
  const room = taken < sizes[open]! && (rollout.maxInFlight === undefined || others.filter(inFlight).length < rollout.maxInFlight);
  for (const v of others) {
    const due = !onC(v) && !failedC(v) && (inFlight(v) || (v.wave <= open && room));
    if (due) memory.due[v.id] ??= now;
    else delete memory.due[v.id];
  }

  const plan = (decision: Decision): FleetPlan => ({
    decision: launch(decision, input.current, C, others), wave: k, waves: sizes.length, order, legacy, memory,
  });

  const failed = others.filter(failedC).map((v) => v.id);
  if (failed.length >= rollout.maxFailures) {
    if (input.current === C && rollout.onFailure === "rollback") return plan({ kind: "rollback", by: failed, reason: "PeerFailed" });
    return plan({ kind: "halted", by: failed, reason: "PeerFailed" });
  }
  if (others.length === 0) return plan({ kind: "move", commit: C, reason: "Alone" });
  if (input.current === C) return plan({ kind: "move", commit: C, reason: "OnCommit" });

  const stuck = others.filter((v) => v.wave < k && memory.due[v.id] !== undefined && now >= memory.due[v.id]! + rollout.deadlineMs);
  if (stuck.length > 0) return plan({ kind: "halted", by: stuck.map((v) => v.id), reason: "PeerStuck" });

  const deadlineOf = (vs: View[]) => {
    const ends = vs.filter((v) => memory.due[v.id] !== undefined).map((v) => memory.due[v.id]! + rollout.deadlineMs);
    return ends.length ? Math.min(...ends) : null;
  };
  if (k <= open) {
    if (room) return plan({ kind: "move", commit: C, reason: "Wave" });
    const busy = others.filter(inFlight);
    return plan({ kind: "wait", for: busy.map((v) => v.id), until: deadlineOf(busy), reason: "WaveFull" });
  }
  // My wave is not open: the earlier waves' share of peers is not yet converged on C for `bake`.
  const need = sizes[k - 1]! - bakedCount;
  const baking = others.filter((v) => onC(v) && !baked(v)).map((v) => ({ v, end: memory.converged[v.id]! + rollout.bakeMs }))
    .sort((a, b) => a.end - b.end);
  const pending = others.filter((v) => v.wave < k && !baked(v));
  if (baking.length >= need) {
    return plan({ kind: "wait", for: pending.filter(onC).map((v) => v.id), until: baking[need - 1]!.end, reason: "Baking" });
  }
  return plan({ kind: "wait", for: pending.map((v) => v.id), until: deadlineOf(pending), reason: "EarlierWave" });
}

/** The memory for this read: reset on a new pin, converged times kept while a peer stays converged on C. */
function remember(old: FleetMemory, C: string, now: number, others: View[]): FleetMemory {
  const fresh = old.commit !== C;
  const m: FleetMemory = { commit: C, pinnedAt: fresh ? now : old.pinnedAt, converged: {}, due: {} };
  for (const v of others) {
    if (v.commit === C && v.state === "converged") m.converged[v.id] = (fresh ? undefined : old.converged[v.id]) ?? now;
    const due = fresh ? undefined : old.due[v.id];
    if (due !== undefined) m.due[v.id] = due;
  }
  return m;
}

/**
 * A node told to wait (or halted) that runs nothing, or runs a commit none of its converged peers
 * runs (a node launched mid-rollout), starts on what most converged peers run (C aside; ties:
 * lowest commit id). A commit some live peer failed (agent:failed) is never chosen.
 */
function launch(d: Decision, current: string | null, C: string, others: View[]): Decision {
  if ((d.kind !== "wait" && d.kind !== "halted") || current === C) return d;
  const failed = new Set(others.map((v) => v.failed).filter((f): f is string => !!f));
  const count = new Map<string, number>();
  for (const v of others) {
    if (v.state === "converged" && v.commit && v.commit !== C && v.commit !== "none" && !failed.has(v.commit)) count.set(v.commit, (count.get(v.commit) ?? 0) + 1);
  }
  if (current !== null && count.has(current)) return d;
  const best = [...count].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))[0];
  return best ? { kind: "move", commit: best[0], reason: "Launch" } : d;
}
