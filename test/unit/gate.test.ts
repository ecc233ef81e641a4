// The rollout gate in the tick (loop/gate.ts), against in-memory ports: the cutover waits for the
// node's wave (prepare goes on), the barrier reads again before it, a moving node tags itself
// deploying first, a halted rollout is read no more, and an idle node makes no read at all.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../../agent/core/clock.ts";
import { rankOrder } from "../../agent/fleet/rank.ts";
import type { RolloutTablePort, SlotAnswer } from "../../agent/loop/rollout-table.ts";
import { newMemory, tick } from "../../agent/loop/tick.ts";
import type { Trust } from "../../agent/trust/trust.ts";
import { A, B, IDS, World, gatePorts as ports } from "./gate-ports.ts";

const ROLLOUT = { waves: [1, "100%"], bake: "2s" };
const CANARY = rankOrder(B, IDS)[0]!, LATER = rankOrder(B, IDS)[2]!;

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), "gate-")); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A node converged on A, then the manifest pins B with rollout waves [1, 100%]. */
async function onA(self: string) {
  const w = new World(), p = ports(w, dir, self), mem = newMemory();
  expect((await tick(p, mem, { mode: "run" })).converged).toBe(true);
  w.writes = []; w.reads = 0;
  w.manifest = { ...w.manifest, commit: B, rollout: ROLLOUT };
  return { w, p, mem };
}

describe("the rollout gate", () => {
  test("an idle node (it runs the pinned commit) reads no peers", async () => {
    const w = new World(), p = ports(w, dir, LATER), mem = newMemory();
    await tick(p, mem, { mode: "run" });
    w.manifest = { ...w.manifest, rollout: ROLLOUT };
    for (let i = 0; i < 3; i++) await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);
    expect(w.reads).toBe(0);
  });

  test("a node of wave 2 prepares B but does not cut over; status says which wave and whom it waits for", async () => {
    const { w, p, mem } = await onA(LATER);
    const r = await tick(p, mem, { mode: "run" });
    expect(w.prepared).toContain(B);
    expect(w.current).toBe(A);
    expect(r.status.phase).toBe("waiting");
    expect(r.status.rollout).toMatchObject({ wave: 2, of: 2, decision: "wait", reason: "EarlierWave", waitingFor: [CANARY] });
    expect(r.status.notices.join("\n")).toContain(`waiting for its wave (wave 2 of 2): for ${CANARY} to converge`);
    expect(r.actions.map((a) => a.kind)).not.toContain("release.cutover");
    // held, it still runs A well: for its peers it is converged on A, not deploying
    expect(w.writes.every((x) => x === "converged@a")).toBe(true);
  });

  test("the canary moves: the barrier reads again, and it tags itself deploying before the switch", async () => {
    const { w, p, mem } = await onA(CANARY);
    const r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(B);
    expect(r.converged).toBe(true);
    expect(w.reads).toBe(2);                  // the gate's read, then the barrier's
    expect(w.writes).toEqual(["deploying@a", "converged@b"]);
    expect(r.status.rollout).toMatchObject({ wave: 1, decision: "move" });
  });

  test("the barrier: the wave closed between the gate's read and the cutover, so no cutover", async () => {
    const { w, p, mem } = await onA(CANARY);
    let n = 0;
    w.read = async () => {
      w.reads++;
      // the second read (the barrier) sees another peer deploying: the wave of one is full
      return w.peers.map((x) => (++n > 3 && x.id === LATER ? { ...x, tags: { ...x.tags, "agent:state": "deploying" } } : x));
    };
    const r = await tick(p, mem, { mode: "run" });
    expect(w.reads).toBe(2);
    expect(w.current).toBe(A);
    expect(r.status.rollout).toMatchObject({ decision: "wait", reason: "WaveFull", waitingFor: [LATER] });
  });

  test("a peer with agent:failed=B halts the rollout: no cutover, and no more reads", async () => {
    const { w, p, mem } = await onA(LATER);
    w.peers = w.peers.map((x) => (x.id === CANARY ? { ...x, tags: { ...x.tags, "agent:state": "failed", "agent:failed": B } } : x));
    const r = await tick(p, mem, { mode: "run" });
    expect(r.status.rollout).toMatchObject({ decision: "halted", reason: "PeerFailed", haltedBy: [CANARY] });
    expect(r.status.notices.join("\n")).toContain(`rollout of ${B.slice(0, 12)} halted by ${CANARY}`);
    const reads = w.reads;
    (p.clock as ManualClock).advance(60_000);
    await tick(p, mem, { mode: "run" });
    expect(w.reads).toBe(reads);
    expect(w.current).toBe(A);
  });

  test("reads are spaced: at most one per max(poll, N/5 s) with jitter, not one per tick", async () => {
    const { w, p, mem } = await onA(LATER);
    for (let i = 0; i < 5; i++) { await tick(p, mem, { mode: "run" }); (p.clock as ManualClock).advance(100); }
    expect(w.reads).toBe(1);
    (p.clock as ManualClock).advance(1_000);
    await tick(p, mem, { mode: "run" });
    expect(w.reads).toBe(2);
  });

  test("onFailure: rollback: a node on B goes back to its last good release when a peer failed B", async () => {
    const { w, p, mem } = await onA(CANARY);
    w.manifest = { ...w.manifest, rollout: { waves: [1, "100%"], bake: "2s", onFailure: "rollback" } };
    await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(B);
    w.peers = w.peers.map((x) => (x.id === LATER ? { ...x, tags: { ...x.tags, "agent:state": "failed", "agent:failed": B } } : x));
    (p.clock as ManualClock).advance(5_000);
    const r = await tick(p, mem, { mode: "run" });
    expect(r.status.rollout).toMatchObject({ decision: "rollback", haltedBy: [LATER] });
    (p.clock as ManualClock).advance(5_000);
    await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);
  });

  test("a fleet launched with rollout: the held nodes tag themselves waiting (not deploying), so the canary still has room", async () => {
    const fresh = (w: World) => { w.manifest = { commit: B, poll: "1s", rollout: ROLLOUT }; w.peers = w.peers.map((x) => ({ ...x, tags: { "agent:commit": "none", "agent:state": "waiting", "agent:version": "1" } })); };
    const w = new World(); fresh(w);
    const later = ports(w, dir, LATER);
    const r = await tick(later, newMemory(), { mode: "run" });
    expect(w.current).toBeNull();
    expect(r.status.rollout).toMatchObject({ decision: "wait", wave: 2 });
    expect(w.writes).toEqual(["waiting@n"]);
    const w2 = new World(); fresh(w2);
    const d2 = mkdtempSync(join(tmpdir(), "gate-"));
    try {
      await tick(ports(w2, d2, CANARY), newMemory(), { mode: "run" });
      expect(w2.current).toBe(B);
      expect(w2.writes).toEqual(["deploying@n", "converged@b"]);
    } finally { rmSync(d2, { recursive: true, force: true }); }
  });
});

describe("a node launched during a rollout", () => {
  /** LATER is new (no release); the canary is converged on B, the others on A. */
  function launched(w = new World()) {
    w.manifest = { commit: B, poll: "1s", rollout: ROLLOUT };
    w.peers = w.peers.map((x) => x.id === CANARY ? { ...x, tags: { ...x.tags, "agent:commit": B } }
      : x.id === LATER ? { ...x, tags: { "agent:commit": "none", "agent:state": "waiting", "agent:version": "1" } } : x);
    return w;
  }

  test("starts on the commit its converged peers run, then moves to B in its wave", async () => {
    const w = launched(), p = ports(w, dir, LATER), mem = newMemory();
    const r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);
    expect(r.status.notices.join("\n")).toContain(`starting on the commit its peers run (${A.slice(0, 12)}) until its wave (wave 2 of 2)`);
    expect(r.status.desired.commit).toBe(B);
    // it never counted as in flight: converged on A for its peers
    expect(w.writes).not.toContain("deploying@n");
    expect(w.writes.at(-1)).toBe("converged@a");
    // the canary's bake is over: it takes part in the rollout like the others
    w.peers = w.peers.map((x) => x.id === LATER ? { ...x, tags: { ...x.tags, "agent:commit": A, "agent:state": "converged" } } : x);
    for (let i = 0; i < 4 && w.current !== B; i++) { (p.clock as ManualClock).advance(2_500); await tick(p, mem, { mode: "run" }); }
    expect(w.current).toBe(B);
  });

  test("`agent plan` shows the launch and changes nothing", async () => {
    const w = launched(), p = ports(w, dir, LATER);
    const r = await tick(p, newMemory(), { mode: "run", dryRun: true });
    expect(w.current).toBeNull();
    expect(r.actions).toContainEqual(expect.objectContaining({ kind: "release.cutover", commit: A }));
    expect(r.status.notices.join("\n")).toContain(`starting on the commit its peers run (${A.slice(0, 12)})`);
  });

  test("with trust: a peers' commit that fails release verification is not run: the node waits for its wave", async () => {
    const w = launched(), p = ports(w, dir, LATER);
    Object.assign(p.source, { commitObject: async () => new Uint8Array(), readFile: async () => null, descendsFrom: async () => true });
    p.trust = {
      config: { require: "tip+release" }, acceptedTip: null, acceptedReleases: new Set<string>(),
      verify: async (oid: string, _o: Uint8Array, what: string) => ({ notices: [], verdict: what === "release" && oid === A ? { accepted: false, message: `refusing release ${A.slice(0, 12)}: not signed` } : { accepted: true, signer: "ops", key: "k" } }),
    } as unknown as Trust;
    const r = await tick(p, newMemory(), { mode: "run" });
    expect(w.current).toBeNull();
    expect(w.prepared).not.toContain(A);
    expect(r.status.notices.join("\n")).toContain(`cannot start on the commit its peers run (${A.slice(0, 12)}): refusing release`);
  });
});

describe("the rollout memory over a restart (state.json)", () => {
  /** The same node, a new agent: a new store read from the same file, a fresh loop Memory, the same clock. */
  const restart = (w: World, self: string, clock: ManualClock) => ({ p: ports(w, dir, self, clock), mem: newMemory() });

  test("a bake started before the restart is not started again", async () => {
    const { w, p, mem } = await onA(LATER);
    const clock = p.clock as ManualClock;
    w.peers = w.peers.map((x) => (x.id === CANARY ? { ...x, tags: { ...x.tags, "agent:commit": B } } : x));
    const r1 = await tick(p, mem, { mode: "run" });
    expect(r1.status.rollout).toMatchObject({ decision: "wait", reason: "Baking" });
    expect(p.store.get().rollout).toMatchObject({ commit: B, memory: { commit: B, converged: { [CANARY]: clock.now() } } });
    clock.advance(1_000);
    const again = restart(w, LATER, clock);
    await tick(again.p, again.mem, { mode: "run" });
    expect(w.current).toBe(A);
    clock.advance(1_500);              // 2.5 s after the canary was first seen converged: baked (2 s)
    await tick(again.p, again.mem, { mode: "run" });
    expect(w.current).toBe(B);
  });

  test("onFailure: rollback still knows what the node ran before it moved, after a restart; another pin drops the memory", async () => {
    const { w, p, mem } = await onA(CANARY);
    const clock = p.clock as ManualClock;
    w.manifest = { ...w.manifest, rollout: { waves: [1, "100%"], bake: "2s", onFailure: "rollback" } };
    await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(B);
    expect(p.store.get().rollout).toMatchObject({ commit: B, from: A });
    const again = restart(w, CANARY, clock);
    w.peers = w.peers.map((x) => (x.id === LATER ? { ...x, tags: { ...x.tags, "agent:state": "failed", "agent:failed": B } } : x));
    clock.advance(5_000);
    const r = await tick(again.p, again.mem, { mode: "run" });
    expect(r.status.notices.join("\n")).toContain(`going back to ${A.slice(0, 12)}`);
    clock.advance(5_000);
    await tick(again.p, again.mem, { mode: "run" });
    expect(w.current).toBe(A);
    // the manifest pins another commit: the memory of B's rollout goes
    w.manifest = { ...w.manifest, commit: "c".repeat(40) };
    clock.advance(5_000);
    await tick(again.p, again.mem, { mode: "run" });
    expect(again.p.store.get().rollout?.commit ?? null).not.toBe(B);
  });
});

describe("pacing", () => {
  test("a freshly started agent paces its first read by the N its last read found (state.json), also over a new pin", async () => {
    const { w, p, mem } = await onA(LATER);
    w.peers = [...w.peers, ...[...Array(997).keys()].map((n) => ({ ...w.peers[0]!, id: `i-1${n}` }))];
    await tick(p, mem, { mode: "run" });
    expect(w.reads).toBeGreaterThan(0);
    expect(p.store.get().rollout).toMatchObject({ commit: B, nodes: 1000 });
    // a mass restart; then the manifest pins another commit: 1000 nodes read once per 200 s, so the first read comes at 0.5 × 200 s
    const clock = new ManualClock((p.clock as ManualClock).now(), [0.5]);
    const again = { p: ports(w, dir, LATER, clock), mem: newMemory() };
    w.manifest = { ...w.manifest, commit: "c".repeat(40) };
    w.reads = 0;
    for (const step of [0, 1_000, 98_000]) { clock.advance(step); await tick(again.p, again.mem, { mode: "run" }); }
    expect(w.reads).toBe(0);                   // paced by N = 1, it would have read 0.5 s after the pin
    expect(again.p.store.get().rollout).toMatchObject({ commit: "c".repeat(40), nodes: 1000 });
    clock.advance(1_000);
    await tick(again.p, again.mem, { mode: "run" });
    expect(w.reads).toBeGreaterThan(0);
  });

  test("a node whose wave is open but waits only for a deploy slot reads the slots alone, and the whole store only once one is free", async () => {
    const { w, p, mem } = await onA(LATER);
    w.manifest = { ...w.manifest, rollout: { waves: ["100%"], store: "dynamodb", maxInFlight: 1 } };
    let free = false, looks = 0;
    const answer = async (): Promise<SlotAnswer> => { looks++; return free ? { ok: true, slot: 0 } : { ok: false, for: ["i-99"], until: null }; };
    const store: RolloutTablePort = { peers: () => w.read(), intervalMs: (poll) => poll, slotFree: answer, slot: answer, publish: async () => {} };
    p.cloud!.rolloutStore = () => store;
    let r = await tick(p, mem, { mode: "run" });
    expect([w.current, w.reads, looks]).toEqual([A, 1, 1]);      // the gate's read says move; the barrier looked at the slots only
    expect(r.status.notices.join("\n")).toContain("waiting for a deploy slot (maxInFlight 1, held by i-99)");
    (p.clock as ManualClock).advance(100);
    await tick(p, mem, { mode: "run" });
    expect([w.current, w.reads, looks]).toEqual([A, 1, 2]);      // the next tick too: no read of the peers
    free = true;
    (p.clock as ManualClock).advance(100);
    r = await tick(p, mem, { mode: "run" });
    expect([w.current, w.reads, looks]).toEqual([B, 2, 4]);      // a slot could be had: the barrier's full read, then the take
  });
});
