// planLease by table: free slots first, a slot held by self, expiry on the reader's own clock only
// when the holder's version stays the same for the whole lease.
import { describe, expect, test } from "bun:test";
import { planLease, type LeaseMemory, type Slot } from "../../agent/fleet/lease.ts";

const L = 120_000;
const s = (slot: number, holder: string | null, version = 1): Slot => ({ slot, holder, version });

describe("planLease", () => {
  const cases: { name: string; slots: Slot[]; k: number; memory?: LeaseMemory; now?: number; want: unknown }[] = [
    { name: "an empty table: take slot 0", slots: [], k: 2, want: { kind: "take", slot: 0, expect: null } },
    { name: "slot 0 held: take slot 1", slots: [s(0, "i-a")], k: 2, want: { kind: "take", slot: 1, expect: null } },
    { name: "a released slot (no holder) is free", slots: [s(0, "i-a"), s(1, null, 7)], k: 2, want: { kind: "take", slot: 1, expect: null } },
    { name: "self holds one: held", slots: [s(0, "i-a"), s(1, "i-self", 4)], k: 2, want: { kind: "held", slot: 1, version: 4 } },
    { name: "all held, first seen now: wait a lease", slots: [s(0, "i-a"), s(1, "i-b")], k: 2, now: 1000, want: { kind: "wait", for: ["i-a", "i-b"], until: 1000 + L } },
    { name: "held, same version for under the lease: wait", slots: [s(0, "i-a", 3)], k: 1, memory: { "0": { holder: "i-a", version: 3, at: 0 } }, now: L - 1, want: { kind: "wait", for: ["i-a"], until: L } },
    { name: "held, same version for the whole lease: take it on condition", slots: [s(0, "i-a", 3)], k: 1, memory: { "0": { holder: "i-a", version: 3, at: 0 } }, now: L,
      want: { kind: "take", slot: 0, expect: { holder: "i-a", version: 3 } } },
    { name: "the version moved (heartbeat): the lease starts over", slots: [s(0, "i-a", 4)], k: 1, memory: { "0": { holder: "i-a", version: 3, at: 0 } }, now: 10 * L,
      want: { kind: "wait", for: ["i-a"], until: 11 * L } },
    { name: "another holder, same version number: starts over", slots: [s(0, "i-b", 3)], k: 1, memory: { "0": { holder: "i-a", version: 3, at: 0 } }, now: 10 * L,
      want: { kind: "wait", for: ["i-b"], until: 11 * L } },
    { name: "slots past maxInFlight are ignored (maxInFlight lowered)", slots: [s(0, "i-a"), s(1, "i-b")], k: 1, now: 0, want: { kind: "wait", for: ["i-a"], until: L } },
    { name: "the longest-expired slot is taken first", slots: [s(0, "i-a"), s(1, "i-b")], k: 2,
      memory: { "0": { holder: "i-a", version: 1, at: 50 }, "1": { holder: "i-b", version: 1, at: 10 } }, now: 10 * L,
      want: { kind: "take", slot: 1, expect: { holder: "i-b", version: 1 } } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = planLease({ self: "i-self", slots: c.slots, maxInFlight: c.k, leaseMs: L, memory: c.memory ?? {}, now: c.now ?? 0 });
      expect(r.decision).toEqual(c.want as never);
    });
  }
  test("the memory keeps the first time a holder+version was seen, and drops freed slots", () => {
    const a = planLease({ self: "x", slots: [s(0, "i-a", 1), s(1, "i-b", 1)], maxInFlight: 2, leaseMs: L, memory: {}, now: 5 });
    const b = planLease({ self: "x", slots: [s(0, "i-a", 1), s(1, null, 2)], maxInFlight: 2, leaseMs: L, memory: a.memory, now: 9 });
    expect(b.memory).toEqual({ "0": { holder: "i-a", version: 1, at: 5 } });
  });
});
