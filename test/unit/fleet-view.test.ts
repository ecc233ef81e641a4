// fleetView (agent status --fleet): per role its wave from one read of the tags, per node its wave in the commit's order.
import { describe, expect, test } from "bun:test";
import { rankOrder } from "../../agent/fleet/rank.ts";
import { fleetView, type FleetPeer } from "../../agent/fleet/view.ts";

const C = "c".repeat(40), OLD = "a".repeat(40);
const peer = (id: string, role: string | null, tags: Record<string, string> = {}, state = "running"): FleetPeer => ({ id, state, role, zone: "us-east-1a", tags });
const conv = (commit: string) => ({ "agent:commit": commit, "agent:state": "converged", "agent:version": "1" });

describe("fleetView", () => {
  test("rolling: the canary on C, the rest in wave 2; nodes in C's rank order", () => {
    const ids = ["i-1", "i-2", "i-3", "i-4"];
    const order = rankOrder(C, ids);
    const peers = ids.map((id) => peer(id, "web", conv(id === order[0] ? C : OLD)));
    const v = fleetView({ environment: "prod", peers, pinned: () => C, waves: [1, "100%"], maxFailures: 1 });
    expect(v.roles).toHaveLength(1);
    expect(v.roles[0]).toMatchObject({ role: "web", commit: C, wave: 2, of: 2, state: "rolling", onCommit: 1, haltedBy: [] });
    expect(v.roles[0]!.nodes.map((n) => [n.instance, n.wave])).toEqual(order.map((id, i) => [id, i === 0 ? 1 : 2]));
  });
  test("halted by a peer with agent:failed=C; done when all are on C; other roles and dead instances apart", () => {
    const peers = [peer("i-1", "web", { ...conv(OLD), "agent:state": "failed", "agent:failed": C }), peer("i-2", "web", conv(OLD)),
      peer("i-3", "db", conv(OLD)), peer("i-4", "db", conv(OLD), "terminated"), peer("i-5", null, conv(OLD))];
    const v = fleetView({ environment: "prod", peers, pinned: (r) => (r === "db" ? OLD : C), waves: [1, "100%"], maxFailures: 1 });
    expect(v.roles.map((r) => [r.role, r.state, r.nodes.length])).toEqual([["db", "done", 1], ["web", "halted", 2]]);
    expect(v.roles[1]!.haltedBy).toEqual(["i-1"]);
  });
  test("no rollout: one wave of every node", () => {
    const v = fleetView({ environment: "prod", peers: [peer("i-1", "web", conv(OLD)), peer("i-2", "web")], pinned: () => C, waves: null, maxFailures: 1 });
    expect(v.roles[0]).toMatchObject({ wave: 1, of: 1, state: "rolling" });
  });
});
