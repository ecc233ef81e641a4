// `agent status --fleet`: the environment's rollout as one read of the peers shows it, per role and
// per node. Pure: the peers, the pinned commits and the rollout settings are passed in. A single
// read cannot time a bake (that is each reader's own clock): a role's wave is how far the peers'
// tags say it got.
import { rankOrder, waveOf, waveSizes } from "./rank.ts";
import { agentCaution, ROLLOUT_MIN_VERSION, type AgentCaution } from "./version.ts";

export interface FleetPeer { id: string; state: string; zone?: string | null; role: string | null; tags: Record<string, string> }

export interface FleetNodeView {
  instance: string; zone: string | null; role: string;
  /** 1-based wave of this node in the role's order for the pinned commit. */
  wave: number;
  commit: string | null; state: string | null; since: string | null; failed: string | null; version: string | null;
  /** Why this node's agent may not follow the rollout (agent/fleet/version.ts); null when it does. */
  caution: AgentCaution | null;
}

export interface FleetRoleView {
  role: string;
  commit: string;
  /** The wave the role is in (1-based) of `of`; with `state: "done"` every node is on the commit. */
  wave: number;
  of: number;
  state: "done" | "rolling" | "halted";
  /** Nodes converged on the commit, of `nodes`. */
  onCommit: number;
  nodes: FleetNodeView[];
  haltedBy: string[];
  /** Nodes with a `caution`, in rank order: their agents may deploy out of turn. */
  cautions: string[];
}

export interface FleetView {
  environment: string; roles: FleetRoleView[];
  /** The first agent version that follows `rollout:` waves (what `caution: "older"` is measured against). */
  minVersion: string;
}

const LIVE = new Set(["pending", "running"]);

/** Per role (sorted by name): its nodes in rank order with their wave and tags, and where the rollout stands. */
export function fleetView(input: {
  environment: string;
  peers: readonly FleetPeer[];
  /** The pinned commit of a role (the role's own `commit:` or the manifest's). */
  pinned: (role: string) => string;
  /** null: no `rollout:` (every node is wave 1 of 1). */
  waves: readonly (number | string)[] | null;
  maxFailures: number;
}): FleetView {
  const byRole = new Map<string, FleetPeer[]>();
  const seen = new Set<string>();
  for (const p of input.peers) {
    if (!LIVE.has(p.state) || !p.role || seen.has(p.id)) continue;
    seen.add(p.id);
    byRole.set(p.role, [...(byRole.get(p.role) ?? []), p]);
  }
  const roles = [...byRole.keys()].sort().map((role): FleetRoleView => {
    const peers = byRole.get(role)!;
    const C = input.pinned(role);
    const order = rankOrder(C, peers.map((p) => p.id));
    const sizes = input.waves ? waveSizes(input.waves, order.length) : [order.length];
    const byId = new Map(peers.map((p) => [p.id, p]));
    const nodes = order.map((id, rank): FleetNodeView => {
      const t = byId.get(id)!.tags;
      return { instance: id, zone: byId.get(id)!.zone ?? null, role, wave: waveOf(sizes, rank) + 1,
        commit: t["agent:commit"] ?? null, state: t["agent:state"] ?? null, since: t["agent:since"] ?? null,
        failed: t["agent:failed"] ?? null, version: t["agent:version"] ?? null,
        caution: agentCaution(t["agent:version"] ?? null, input.waves !== null) };
    });
    const onCommit = nodes.filter((n) => n.commit === C && n.state === "converged").length;
    const failed = nodes.filter((n) => n.failed === C).map((n) => n.instance);
    const k = sizes.findIndex((s) => onCommit < s);
    const state = failed.length >= input.maxFailures ? "halted" : k < 0 ? "done" : "rolling";
    return { role, commit: C, wave: k < 0 ? sizes.length : k + 1, of: sizes.length, state, onCommit, nodes, haltedBy: state === "halted" ? failed : [],
      cautions: nodes.filter((n) => n.caution).map((n) => n.instance) };
  });
  return { environment: input.environment, roles, minVersion: ROLLOUT_MIN_VERSION };
}
