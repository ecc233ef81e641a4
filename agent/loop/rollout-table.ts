// The DynamoDB rollout store behind the gate (manifest rollout.store: dynamodb; the node config's
// rollout.table): the role's node records read as peers, this node's record published beside its
// tags, and a deploy slot (rollout.maxInFlight) taken by conditional write, kept alive by a
// heartbeat every lease/3 and given back once the node is no longer deploying. The decision which
// slot to take is planLease's (agent/fleet/lease.ts); this file is its effects. Records of
// instances that are gone are found through EC2 (which ids: agent/fleet/liveness.ts) and deleted
// on condition they are unchanged, so the table cleans itself. docs/fleet.md.
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { AgentError, errorMessage, toAgentError } from "../core/errors.ts";
import { partitionOf, type NodeRecord, type RolloutTable } from "../cloud/dynamodb.ts";
import type { PeerInfo } from "../cloud/ec2.ts";
import { backoffMs, describeIntervalMs, queryIntervalMs } from "../fleet/budget.ts";
import { planLease, type LeaseMemory, type Slot } from "../fleet/lease.ts";
import { deadIds, idsToCheck, noteRecords, type Silence } from "../fleet/liveness.ts";
import type { Identity, RolloutStore } from "./ports.ts";

export type SlotAnswer = { ok: true; slot: number } | { ok: false; for: string[]; until: number | null };

export interface RolloutTablePort extends RolloutStore {
  /** Hold one of maxInFlight deploy slots (take one if free or expired); ok: false, wait. */
  slot(identity: Identity, maxInFlight: number, leaseMs: number): Promise<SlotAnswer>;
  /** This node's record from its agent:* tags (only on change); gives a held slot back unless it is deploying. */
  publish(identity: Identity, tags: Record<string, string>): Promise<void>;
}

/** EC2's state of these instances (filtered DescribeInstances by instance-id; absent: unknown to EC2). */
export type InstanceStates = (identity: Identity, ids: readonly string[], retryAfterMs: number) => Promise<Record<string, string>>;

const NOT_SET = "rollout.store: dynamodb needs the table's name in the node config (/etc/agent/agent.yaml: rollout: { table: NAME }); create the table as docs/fleet.md shows";

/** One per process: it remembers the slot it holds, the heartbeat timer and the lease memory. */
export function rolloutTablePort(tableFor: ((region: string) => RolloutTable) | null, clock: Clock, log: Logger, states: InstanceStates | null = null): RolloutTablePort {
  let made: { region: string; table: RolloutTable } | null = null;
  // Liveness: what each record said at the last read and since when (this node's clock), and when EC2 may be asked next.
  let records = new Map<string, NodeRecord>();
  let silence: Silence = {};
  // Records EC2 said are gone, as they read then: left out while unchanged (a delete that failed is not retried on every read).
  const gone = new Map<string, string>();
  let nextCheckAt = 0, attempt = 0, warned = false;
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
  const lease = (id: Identity, maxInFlight: number, leaseMs: number, read: Slot[]) => {
    const plan = planLease({ self: id.instanceId, slots: read, maxInFlight, leaseMs, memory, now: clock.now() });
    memory = plan.memory;
    return plan.decision;
  };
  return {
    intervalMs: (poll, nodes, jitter) => queryIntervalMs(poll, nodes, jitter),
    async peers(id) {
      const r = await need(id).read(part(id));
      slots = r.slots;
      const nodes = r.nodes.filter((n) => {
        const was = gone.get(n.instance);
        if (was === undefined) return true;
        if (was === JSON.stringify(n)) return false;
        gone.delete(n.instance);                                        // it wrote again: it counts
        return true;
      });
      records = new Map(nodes.map((n) => [n.instance, n]));
      silence = noteRecords(silence, nodes.map((n) => ({ id: n.instance, record: JSON.stringify(n) })), clock.now());
      return nodes.map((n): PeerInfo => ({
        id: n.instance, state: "running", launchedAt: null, role: id.role ?? null,
        tags: Object.fromEntries(Object.entries({ "agent:commit": n.commit, "agent:state": n.state, "agent:failed": n.failed, "agent:since": n.since, "agent:version": n.version })
          .filter((e): e is [string, string] => !!e[1])),
      }));
    },
    async slotFree(id, maxInFlight, leaseMs) {
      slots = await need(id).readSlots(part(id));                    // the slots only: one small page
      const d = lease(id, maxInFlight, leaseMs, slots);
      return d.kind === "wait" ? { ok: false, for: d.for, until: d.until } : { ok: true, slot: d.slot };
    },
    async slot(id, maxInFlight, leaseMs) {
      const t = need(id), P = part(id);
      slots = await t.readSlots(P);                                  // the slots only: one small page
      const d = lease(id, maxInFlight, leaseMs, slots);
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
    async prune(id, heldBy, o) {
      const now = clock.now();
      const check = idsToCheck({ self: id.instanceId, heldBy, silence, silentMs: o.silentMs, now, nextCheckAt });
      if (!check.length) return { dead: [], notice: null };
      if (!states) {
        if (!warned) log.warn("cannot ask EC2 whether silent peers still run (no EC2 identity); their records count until they change", { peers: check });
        warned = true;
        return { dead: [], notice: `cannot ask EC2 whether ${check.join(", ")} still run (this node has no EC2 identity): their records count as peers until they change or the deadline halts the rollout` };
      }
      const interval = describeIntervalMs(o.pollMs, records.size, clock.random());
      let found: Record<string, string>;
      try {
        found = await states(id, check, interval);
      } catch (e) {
        const err = toAgentError(e);
        nextCheckAt = now + Math.max(err.reason === "Ec2Throttled" ? backoffMs(interval, attempt++, clock.random()) : interval, err.retry.kind === "after" ? err.retry.ms : 0);
        return { dead: [], notice: `could not ask EC2 whether ${check.join(", ")} still run (${err.reason}): ${err.message}` };
      }
      attempt = 0;
      nextCheckAt = now + interval;
      const dead: string[] = [];
      for (const d of deadIds(check, found)) {
        const rec = records.get(d);
        // Deleted only if unchanged since the read: a node that wrote since (it came back) keeps its record and counts.
        const deleted = !rec || await need(id).remove(part(id), rec).catch((e) => {
          log.warn("could not delete the record of a gone instance; leaving it out while it is unchanged", { instance: d, error: errorMessage(e) });
          gone.set(d, JSON.stringify(rec));
          return true;
        });
        if (!deleted) continue;
        dead.push(d);
        records.delete(d);
        delete silence[d];
      }
      if (dead.length) log.info("dropped the records of instances EC2 says are gone", { instances: dead });
      return { dead, notice: null };
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
