// planLease: may this node take one of the role's maxInFlight deploy slots now? A slot is one item
// of the rollout table (holder, version); the holder bumps its version every lease/3 while it
// deploys. A slot is free when it has no holder, or when its holder and version have not changed
// for `leaseMs` on the reader's own clock (the DynamoDB lock client's rule), so nodes' clocks need
// not agree. The take itself is a conditional write on what was read (agent/cloud/dynamodb.ts).
// Pure: no I/O, no clock (now is passed in). docs/fleet.md.

/** One slot as the table showed it; a slot never written reads as { holder: null, version: 0 }. */
export interface Slot { slot: number; holder: string | null; version: number }

/** Per slot: the holder and version the reader last saw, and when (its own clock) it first saw them. */
export type LeaseMemory = Record<string, { holder: string; version: number; at: number }>;

export type LeaseDecision =
  /** This node holds `slot` (it took it earlier and still does): go on. */
  | { kind: "held"; slot: number; version: number }
  /** Write `slot` with this node as holder, on condition it still reads `expect` (null: no holder). */
  | { kind: "take"; slot: number; expect: { holder: string; version: number } | null }
  /** Every slot is held and live: look again; `until` is when the first lease would expire if its version stays. */
  | { kind: "wait"; for: string[]; until: number };

export interface LeaseInput {
  self: string;
  slots: readonly Slot[];
  maxInFlight: number;
  leaseMs: number;
  memory: LeaseMemory;
  now: number;
}

/** The decision and the updated memory (pass it back next time). Lowest free slot first, then the longest-expired. */
export function planLease(input: LeaseInput): { decision: LeaseDecision; memory: LeaseMemory } {
  const { self, maxInFlight, leaseMs, now } = input;
  const bySlot = new Map(input.slots.filter((s) => s.slot >= 0 && s.slot < maxInFlight).map((s) => [s.slot, s]));
  const memory: LeaseMemory = {};
  const all: Slot[] = [];
  for (let i = 0; i < maxInFlight; i++) all.push(bySlot.get(i) ?? { slot: i, holder: null, version: 0 });
  for (const s of all) {
    if (!s.holder) continue;
    const old = input.memory[String(s.slot)];
    memory[String(s.slot)] = old && old.holder === s.holder && old.version === s.version ? old : { holder: s.holder, version: s.version, at: now };
  }
  const mine = all.find((s) => s.holder === self);
  if (mine) return { decision: { kind: "held", slot: mine.slot, version: mine.version }, memory };
  const free = all.find((s) => !s.holder);
  if (free) return { decision: { kind: "take", slot: free.slot, expect: null }, memory };
  const held = all.map((s) => ({ s, at: memory[String(s.slot)]!.at })).sort((a, b) => a.at - b.at || a.s.slot - b.s.slot);
  const expired = held.find((h) => h.at + leaseMs <= now);
  if (expired) return { decision: { kind: "take", slot: expired.s.slot, expect: { holder: expired.s.holder!, version: expired.s.version } }, memory };
  return { decision: { kind: "wait", for: held.map((h) => h.s.holder!).sort(), until: held[0]!.at + leaseMs }, memory };
}
