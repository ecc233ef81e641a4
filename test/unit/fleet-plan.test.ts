// planFleet as tables: one read of the peers and the reader's memory in, a decision out. Nodes
// are named by their rank for the commit (r[0] is the canary), so a table does not depend on
// which ids the hash happens to put first.
import { describe, expect, test } from "bun:test";
import { planFleet } from "../../agent/fleet/plan.ts";
import { rankOrder } from "../../agent/fleet/rank.ts";
import { emptyMemory, type FleetInput, type FleetMemory, type Peer, type RolloutSettings } from "../../agent/fleet/types.ts";

const OLD = "a".repeat(40), C = "c".repeat(40), D = "d".repeat(40);
const S = 1000, M = 60 * S;
const ROLLOUT: RolloutSettings = { waves: [1, "25%", "100%"], bakeMs: 2 * M, deadlineMs: 15 * M, maxFailures: 1, onFailure: "halt" };
const IDS = Array.from({ length: 8 }, (_, i) => `i-0${(i + 10).toString(16)}f${i}`);
/** The 8 ids in rank order for C: waves [1, 25%, 100%] of 8 have cumulative sizes 1, 2, 8: r[0] | r[1] | r[2..7]. */
const r = rankOrder(C, IDS);
const T0 = 1_800_000_000_000;

type Tags = { commit?: string; state?: string; failed?: string; version?: string | null; since?: string };
function peer(id: string, t: Tags = {}, state = "running"): Peer {
  const tags: Record<string, string> = {
    "agent:commit": t.commit ?? OLD, "agent:state": t.state ?? "converged", "agent:since": t.since ?? "2026-12-01T00:00:00Z",
  };
  if (t.failed) tags["agent:failed"] = t.failed;
  if (t.version !== null) tags["agent:version"] = t.version ?? "0.2.0";
  return { id, state, launchedAt: T0 - 3600 * S, tags };
}
/** Every id as a converged peer on OLD, with overrides. */
function fleet(over: Record<string, Tags | "terminated"> = {}, ids = IDS): Peer[] {
  return ids.map((id) => over[id] === "terminated" ? peer(id, {}, "terminated") : peer(id, over[id] as Tags | undefined));
}
function input(self: string, peers: Peer[], extra: Partial<FleetInput> = {}): FleetInput {
  return { self, current: OLD, pinned: C, peers, rollout: ROLLOUT, memory: emptyMemory(), now: T0, ...extra };
}
/** Reads the same view at each time in turn, carrying the memory, and returns the last plan. */
function readAt(self: string, times: number[], view: (t: number) => Peer[], extra: Partial<FleetInput> = {}) {
  let memory: FleetMemory = emptyMemory();
  let last = planFleet(input(self, view(times[0]!), { ...extra, memory, now: times[0]! }));
  for (const t of times) {
    last = planFleet(input(self, view(t), { ...extra, memory, now: t }));
    memory = last.memory;
  }
  return last;
}
const onC = { commit: C, state: "converged" };

describe("waves and ranks", () => {
  test("every node computes the same order; waves [1, 25%, 100%] of 8 are 1, then 1 more, then 6", () => {
    const plans = IDS.map((id) => planFleet(input(id, fleet())));
    for (const p of plans) expect(p.order).toEqual(r);
    expect(plans.map((p) => p.waves)).toEqual(IDS.map(() => 3));
    const waveOf = Object.fromEntries(IDS.map((id, i) => [id, plans[i]!.wave]));
    expect(r.map((id) => waveOf[id])).toEqual([0, 1, 2, 2, 2, 2, 2, 2]);
  });
  test("the canary rotates: another commit ranks the same ids differently", () => {
    expect(rankOrder(D, IDS)).not.toEqual(r);
    expect(new Set([C, D, OLD, "e".repeat(40), "f".repeat(40)].map((c) => rankOrder(c, IDS)[0])).size).toBeGreaterThan(1);
  });
});

describe("planFleet: one read", () => {
  const cases: { name: string; self: string; peers: () => Peer[]; extra?: Partial<FleetInput>; want: object; wave?: number }[] = [
    { name: "the canary moves first", self: r[0]!, peers: () => fleet(), want: { kind: "move", commit: C, reason: "Wave" }, wave: 0 },
    { name: "a wave-1 node waits for the canary", self: r[1]!, peers: () => fleet(),
      want: { kind: "wait", reason: "EarlierWave", for: [r[0]] }, wave: 1 },
    { name: "a wave-2 node waits for waves 0 and 1", self: r[5]!, peers: () => fleet(),
      want: { kind: "wait", reason: "EarlierWave", for: [r[0], r[1]] }, wave: 2 },
    { name: "a node with no peers takes the pinned commit", self: "i-0lone", peers: () => [peer("i-0lone")],
      want: { kind: "move", commit: C, reason: "Alone" }, wave: 0 },
    { name: "a node missing from its own read (stale) counts itself", self: "i-0lone", peers: () => [],
      want: { kind: "move", commit: C, reason: "Alone" } },
    { name: "a node already on C stays on it", self: r[4]!, peers: () => fleet({ [r[4]!]: onC }), extra: { current: C },
      want: { kind: "move", commit: C, reason: "OnCommit" } },
    { name: "a canary that failed: no one else moves, halted by it", self: r[1]!,
      peers: () => fleet({ [r[0]!]: { commit: OLD, state: "failed", failed: C } }),
      want: { kind: "halted", by: [r[0]], reason: "PeerFailed" } },
    { name: "a failed canary halts the last wave too", self: r[7]!,
      peers: () => fleet({ [r[0]!]: { commit: OLD, state: "failed", failed: C } }),
      want: { kind: "halted", by: [r[0]], reason: "PeerFailed" } },
    { name: "onFailure: halt keeps a node on C running C", self: r[0]!, extra: { current: C },
      peers: () => fleet({ [r[0]!]: onC, [r[1]!]: { failed: C, state: "failed" } }),
      want: { kind: "halted", by: [r[1]], reason: "PeerFailed" } },
    { name: "onFailure: rollback sends a node on C back", self: r[0]!, extra: { current: C, rollout: { ...ROLLOUT, onFailure: "rollback" } },
      peers: () => fleet({ [r[0]!]: onC, [r[1]!]: { failed: C, state: "failed" } }),
      want: { kind: "rollback", by: [r[1]], reason: "PeerFailed" } },
    { name: "maxFailures: 2 tolerates one failed peer", self: r[1]!, extra: { rollout: { ...ROLLOUT, maxFailures: 2 } },
      peers: () => fleet({ [r[0]!]: { failed: C, state: "failed" } }), want: { kind: "wait" } },
    { name: "an old failure of another commit does not count", self: r[0]!,
      peers: () => fleet({ [r[1]!]: { failed: D } }), want: { kind: "move", commit: C } },
    { name: "the canary waits while another node is deploying (a different view made it canary)", self: r[0]!,
      peers: () => fleet({ [r[3]!]: { commit: OLD, state: "deploying" } }), want: { kind: "wait", reason: "WaveFull", for: [r[3]] } },
    { name: "clocks skewed +2m on the canary's since tag: the bake starts on the reader's clock", self: r[1]!,
      peers: () => fleet({ [r[0]!]: { ...onC, since: new Date(T0 - 10 * M).toISOString() } }),
      want: { kind: "wait", reason: "Baking", until: T0 + 2 * M } },
    { name: "stale read: the canary's converged tag is not visible yet", self: r[1]!,
      peers: () => fleet({ [r[0]!]: { commit: OLD, state: "deploying" } }), want: { kind: "wait", reason: "EarlierWave", for: [r[0]] } },
    { name: "a terminated peer drops out of the count (7 live: waves of 1, 1, 5)", self: r[1]!,
      peers: () => fleet({ [r[0]!]: "terminated" }), want: { kind: "move", commit: C, reason: "Wave" }, wave: 0 },
    { name: "maxInFlight 1: one peer deploying fills a wave of 100% (advisory with tags; the DynamoDB slots enforce it)", self: r[0]!,
      extra: { rollout: { ...ROLLOUT, waves: ["100%"], maxInFlight: 1 } },
      peers: () => fleet({ [r[3]!]: { commit: OLD, state: "deploying" } }), want: { kind: "wait", reason: "WaveFull", for: [r[3]] } },
    { name: "maxInFlight 2: one peer deploying leaves room", self: r[0]!,
      extra: { rollout: { ...ROLLOUT, waves: ["100%"], maxInFlight: 2 } },
      peers: () => fleet({ [r[3]!]: { commit: OLD, state: "deploying" } }), want: { kind: "move", commit: C, reason: "Wave" } },
    { name: "an agent without agent:version is flagged as legacy", self: r[0]!,
      peers: () => fleet({ [r[6]!]: { version: null } }), want: { kind: "move" } },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const p = planFleet(input(c.self, c.peers(), c.extra));
      expect(p.decision).toMatchObject(c.want);
      if (c.wave !== undefined) expect(p.wave).toBe(c.wave);
    });
  }
  test("a peer listed twice (overlapping pages) counts once", () => {
    const twice = [...fleet(), peer(r[0]!, { state: "deploying" })];
    const p = planFleet(input(r[1]!, twice));
    expect(p.order).toEqual(r);
    expect(p.decision).toMatchObject({ kind: "wait", reason: "EarlierWave", for: [r[0]] });
  });
  test("legacy peers are named", () => {
    expect(planFleet(input(r[0]!, fleet({ [r[6]!]: { version: null } }))).legacy).toEqual([r[6]!]);
  });
});

describe("planFleet: reads over time (the reader's memory)", () => {
  const canaryDone = () => fleet({ [r[0]!]: onC });
  test("bake: wave 1 moves only bake after the reader first saw the canary converged", () => {
    expect(readAt(r[1]!, [T0, T0 + 119 * S], canaryDone).decision).toMatchObject({ kind: "wait", reason: "Baking", until: T0 + 2 * M });
    expect(readAt(r[1]!, [T0, T0 + 2 * M], canaryDone).decision).toMatchObject({ kind: "move", commit: C, reason: "Wave" });
  });
  test("clocks skewed ±2 minutes change nothing: only the reader's clock times the bake", () => {
    for (const skew of [-2 * M, 2 * M]) {
      const view = () => fleet({ [r[0]!]: { ...onC, since: new Date(T0 + skew).toISOString() } });
      expect(readAt(r[1]!, [T0, T0 + 119 * S], view).decision.kind).toBe("wait");
      expect(readAt(r[1]!, [T0, T0 + 2 * M], view).decision.kind).toBe("move");
    }
  });
  test("a stale read that shows the canary deploying again restarts its bake", () => {
    const view = (t: number) => t === T0 + M ? fleet({ [r[0]!]: { state: "deploying" } }) : canaryDone();
    expect(readAt(r[1]!, [T0, T0 + M, T0 + 2 * M], view).decision).toMatchObject({ kind: "wait", reason: "Baking", until: T0 + 4 * M });
  });
  test("wave 2 waits for wave 1 to bake, then moves", () => {
    const all = () => fleet({ [r[0]!]: onC, [r[1]!]: onC });
    expect(readAt(r[5]!, [T0, T0 + M], all).decision).toMatchObject({ kind: "wait", reason: "Baking" });
    expect(readAt(r[5]!, [T0, T0 + 2 * M], all).decision).toMatchObject({ kind: "move", reason: "Wave" });
  });
  test("a canary that never reports within the deadline halts the rollout, and is named", () => {
    const view = () => fleet({ [r[0]!]: { state: "deploying" } });
    expect(readAt(r[3]!, [T0, T0 + 14 * M], view).decision).toMatchObject({ kind: "wait", until: T0 + 15 * M });
    expect(readAt(r[3]!, [T0, T0 + 15 * M], view).decision).toMatchObject({ kind: "halted", by: [r[0]], reason: "PeerStuck" });
  });
  test("a canary silent on the old commit (its agent stopped) halts after the deadline too", () => {
    expect(readAt(r[1]!, [T0, T0 + 15 * M], () => fleet()).decision).toMatchObject({ kind: "halted", by: [r[0]] });
  });
  test("a peer terminated mid-rollout: the stuck canary is gone, the next node in rank becomes canary", () => {
    const view = (t: number) => fleet({ [r[0]!]: t < T0 + 5 * M ? { state: "deploying" } : "terminated" });
    const p = readAt(r[1]!, [T0, T0 + 5 * M, T0 + 16 * M], view);
    expect(p.decision).toMatchObject({ kind: "move", reason: "Wave" });
    expect(p.memory.due[r[0]!]).toBeUndefined();
  });
  test("a new pin halfway starts a new rollout of the new commit from wave 0", () => {
    const midway = fleet({ [r[0]!]: onC, [r[1]!]: onC, [r[2]!]: onC });
    let p = planFleet(input(r[5]!, midway, { now: T0 }));
    p = planFleet(input(r[5]!, midway, { now: T0 + 3 * M, memory: p.memory }));
    expect(p.decision.kind).toBe("move");
    const d = rankOrder(D, IDS);
    const onD = planFleet(input(d[1]!, midway, { pinned: D, now: T0 + 4 * M, memory: p.memory }));
    expect(onD.memory).toMatchObject({ commit: D, pinnedAt: T0 + 4 * M, converged: {} });
    expect(onD.decision).toMatchObject({ kind: "wait", reason: "EarlierWave", for: [d[0]] });
    expect(planFleet(input(d[0]!, midway, { pinned: D, now: T0 + 4 * M })).decision).toMatchObject({ kind: "move", commit: D });
  });
  test("a rollout halted by a failure stays halted until another commit is pinned", () => {
    const view = () => fleet({ [r[0]!]: { failed: C, state: "failed" } });
    expect(readAt(r[4]!, [T0, T0 + 60 * M], view).decision.kind).toBe("halted");
    expect(planFleet(input(rankOrder(D, IDS)[0]!, view(), { pinned: D })).decision).toMatchObject({ kind: "move", commit: D });
  });
});

describe("planFleet: nodes that come and go", () => {
  /** An id that ranks first for C among IDS and itself: a late node that lands in wave 0. */
  const late = (() => { for (let i = 0; ; i++) { const c = `i-0late${i}`; if (rankOrder(C, [...IDS, c])[0] === c) return c; } })();
  const ids = [...IDS, late];
  test("a node launched mid-rollout starts on the commit its converged peers run", () => {
    const view = fleet({ [r[0]!]: onC, [late]: { commit: "none", state: "deploying" } }, ids);
    expect(planFleet(input(late, view, { current: null })).decision).toEqual({ kind: "move", commit: OLD, reason: "Launch" });
    // on a fleet where no one has converged on anything yet, a new node simply waits its turn
    const fresh = fleet(Object.fromEntries(ids.map((id) => [id, { commit: "none", state: "deploying" }])), ids);
    expect(planFleet(input(r[5]!, fresh, { current: null })).decision.kind).toBe("wait");
  });
  test("a node on a commit no converged peer runs (an old image) starts on its peers' commit; one that a peer failed is never chosen", () => {
    const Z = "e".repeat(40);
    const view = fleet({ [r[0]!]: onC }, ids);
    expect(planFleet(input(late, view, { current: Z })).decision).toEqual({ kind: "move", commit: OLD, reason: "Launch" });
    // on OLD like its peers: it waits its wave as before
    expect(planFleet(input(r[5]!, view, { current: OLD })).decision.kind).toBe("wait");
    // most peers run OLD, one D; a peer failed OLD (and the breaker counts only C): D it is
    const split = fleet({ [r[0]!]: onC, [r[1]!]: { commit: D }, [r[2]!]: { commit: OLD, state: "failed", failed: OLD } }, ids);
    expect(planFleet(input(late, split, { current: null })).decision).toEqual({ kind: "move", commit: D, reason: "Launch" });
  });
  test("a launched node that ranks in wave 0 after the canary moved takes part in the next wave, not as a second canary", () => {
    const view = () => fleet({ [r[0]!]: onC }, ids);
    expect(readAt(late, [T0], view).decision).toMatchObject({ kind: "wait", reason: "WaveFull" });
    expect(readAt(late, [T0, T0 + 2 * M], view).decision).toMatchObject({ kind: "move", commit: C, reason: "Wave" });
    // while it waited for room it was not due: it halts no one; once due, it has the deadline like anyone
    const last = rankOrder(C, ids)[8]!;
    expect(readAt(last, [T0, T0 + M], view).decision).toMatchObject({ kind: "wait" });
    expect(readAt(last, [T0, T0 + 2 * M, T0 + 17 * M], view).decision).toMatchObject({ kind: "halted", reason: "PeerStuck" });
  });
  test("two nodes with different views never both become canary", () => {
    // X is new: A's read does not show it yet; X's read shows A already deploying.
    const ids = [...IDS];
    let x = "";
    for (let i = 0; !x; i++) { const c = `i-0x${i}`; if (rankOrder(C, [...ids, c])[0] === c) x = c; }
    const a = r[0]!;
    const aSees = fleet({}, ids);
    expect(planFleet(input(a, aSees)).decision.kind).toBe("move");
    const xSees = fleet({ [a]: { state: "deploying" }, [x]: { commit: "none", state: "deploying" } }, [...ids, x]);
    expect(planFleet(input(x, xSees)).decision.kind).not.toBe("move");
    expect(planFleet(input(x, xSees, { current: OLD })).decision).toMatchObject({ kind: "wait", reason: "WaveFull" });
    // every other node, whichever view it has, waits
    for (const id of ids.filter((i) => i !== a)) {
      expect(planFleet(input(id, aSees)).decision.kind).toBe("wait");
      expect(planFleet(input(id, xSees)).decision.kind).toBe("wait");
    }
  });
  test("different views, deciding one after another: at most one canary whatever peers each misses", () => {
    let seed = 42;
    const rand = () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648; };
    for (let trial = 0; trial < 200; trial++) {
      const all = [...IDS, `i-0n${trial}`];
      const deploying = new Set<string>();
      for (const id of [...all].sort(() => rand() - 0.5)) {
        // each node misses up to two peers that have not written anything yet (a new node, a slow read)
        const missing = new Set(all.filter((p) => p !== id && !deploying.has(p) && rand() < 0.25).slice(0, 2));
        const view = all.filter((p) => !missing.has(p)).map((p) => peer(p, deploying.has(p) ? { state: "deploying" } : {}));
        if (planFleet(input(id, view)).decision.kind === "move") deploying.add(id);
      }
      expect(deploying.size).toBe(1);
    }
  });
  test("fleet simulation: 8 nodes reading each other every 30s move in waves of 1, 1 and 6 and never exceed the wave", () => {
    const tags = new Map(IDS.map((id) => [id, { commit: OLD, state: "converged" } as Tags]));
    const mem = new Map(IDS.map((id) => [id, emptyMemory()]));
    const movedAt = new Map<string, number>();
    for (let t = T0; t < T0 + 30 * M && movedAt.size < IDS.length; t += 30 * S) {
      for (const id of IDS) {
        if (movedAt.has(id)) continue;
        const view = IDS.map((p) => peer(p, tags.get(p)));
        const p = planFleet(input(id, view, { memory: mem.get(id)!, now: t }));
        mem.set(id, p.memory);
        if (p.decision.kind === "move") { movedAt.set(id, t); tags.set(id, onC); }
      }
      const onCount = [...tags.values()].filter((v) => v.commit === C).length;
      expect([0, 1, 2, 8]).toContain(onCount);
    }
    const minutes = r.map((id) => (movedAt.get(id)! - T0) / M);
    expect(minutes.slice(0, 2)).toEqual([0, 2]);
    // wave 2 moves bake after each reader first saw wave 1 converged: the same read, or the next one
    for (const m of minutes.slice(2)) expect([4, 4.5]).toContain(m);
  });
});
