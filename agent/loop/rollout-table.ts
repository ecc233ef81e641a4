// The DynamoDB rollout store behind the gate (manifest rollout.store: dynamodb; the node config's
// rollout.table): the role's node records read as peers, this node's record published beside its
// tags, and a deploy slot (rollout.maxInFlight) taken by conditional write, kept alive by a
// heartbeat every lease/3 and given back once the node is no longer deploying. The decision which
// slot to take is planLease's (agent/fleet/lease.ts); this file is its effects. docs/fleet.md.
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { AgentError, errorMessage } from "../core/errors.ts";
import { partitionOf, type NodeRecord, type RolloutTable } from "../cloud/dynamodb.ts";
import type { PeerInfo } from "../cloud/ec2.ts";
import { planLease, type LeaseMemory, type Slot } from "../fleet/lease.ts";
import type { Identity } from "./ports.ts";

export type SlotAnswer = { ok: true; slot: number } | { ok: false; for: string[]; until: number | null };

export interface RolloutTablePort {
  /** The role's node records, as the planner's peers (one strongly consistent read). */
  peers(identity: Identity): Promise<PeerInfo[]>;
  /** Hold one of maxInFlight deploy slots (take one if free or expired); ok: false, wait. */
  slot(identity: Identity, maxInFlight: number, leaseMs: number): Promise<SlotAnswer>;
  /** This node's record from its agent:* tags (only on change); gives a held slot back unless it is deploying. */
  publish(identity: Identity, tags: Record<string, string>): Promise<void>;
}

const NOT_SET = "rollout.store: dynamodb needs the table's name in the node config (/etc/agent/agent.yaml: rollout: { table: NAME }); create the table as docs/fleet.md shows";

/** One per process: it remembers the slot it holds, the heartbeat timer and the lease memory. */
export function rolloutTablePort(tableFor: ((region: string) => RolloutTable) | null, clock: Clock, log: Logger): RolloutTablePort {
  let made: { region: string; table: RolloutTable } | null = null;
  let held: { partition: string; slot: number; self: string; timer: ReturnType<typeof setInterval> } | null = null;
  let memory: LeaseMemory = {};
  let slots: Slot[] = [];
  let published = "";
  const need = (id: Identity): RolloutTable => {
    if (!tableFor) throw new AgentError("RolloutTableNotSet", NOT_SET);
    if (made?.region !== id.region) made = { region: id.region, table: tableFor(id.region) };
    return made.table;
  };
  const part = (id: Identity) => partitionOf(id.environment ?? "", id.role ?? "");
  const stop = async () => {
    if (!held) return;
    const h = held; held = null;
    clearInterval(h.timer);
    await made!.table.release(h.partition, h.slot, h.self);
  };
  return {
    async peers(id) {
      const r = await need(id).read(part(id));
      slots = r.slots;
      return r.nodes.map((n): PeerInfo => ({
        id: n.instance, state: "running", launchedAt: null, role: id.role ?? null,
        tags: Object.fromEntries(Object.entries({ "agent:commit": n.commit, "agent:state": n.state, "agent:failed": n.failed, "agent:since": n.since, "agent:version": n.version })
          .filter((e): e is [string, string] => !!e[1])),
      }));
    },
    async slot(id, maxInFlight, leaseMs) {
      const t = need(id), P = part(id);
      slots = await t.readSlots(P);                                  // the slots only: one small page
      const plan = planLease({ self: id.instanceId, slots, maxInFlight, leaseMs, memory, now: clock.now() });
      memory = plan.memory;
      const d = plan.decision;
      if (d.kind === "wait") return { ok: false, for: d.for, until: d.until };
      if (d.kind === "take" && !(await t.take(P, d.slot, id.instanceId, d.expect))) return { ok: false, for: [], until: null };   // another node got it first
      if (!held || held.slot !== d.slot || held.partition !== P) {
        if (held) clearInterval(held.timer);
        const timer = setInterval(() => {
          t.beat(P, d.slot, id.instanceId).then((ok) => { if (!ok) log.warn("lost the deploy slot (another node took it after a lease without heartbeat)", { slot: d.slot }); },
            (e) => log.warn("could not renew the deploy slot", { error: errorMessage(e) }));
        }, Math.max(1000, Math.floor(leaseMs / 3)));
        timer.unref?.();
        held = { partition: P, slot: d.slot, self: id.instanceId, timer };
      }
      return { ok: true, slot: d.slot };
    },
    async publish(id, tags) {
      if (!tableFor) return;
      const table = need(id);
      const rec: NodeRecord = { instance: id.instanceId, commit: tags["agent:commit"] ?? null, state: tags["agent:state"] ?? null, failed: tags["agent:failed"] ?? null,
        since: tags["agent:since"] ?? null, version: tags["agent:version"] ?? null };
      const key = JSON.stringify(rec);
      if (key !== published) { await table.publish(part(id), rec); published = key; }
      if (rec.state === "deploying") return;
      await stop();
      // After a restart the holder does not remember its slot: give back any the last read showed it holding.
      for (const s of slots.filter((x) => x.holder === id.instanceId)) await table.release(part(id), s.slot, id.instanceId);
      slots = slots.filter((x) => x.holder !== id.instanceId);
    },
  };
}
