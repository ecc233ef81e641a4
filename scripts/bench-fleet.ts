// Benchmark of a fleet rollout without a central deployer, as a pure event-driven simulation: N
// nodes read their peers on the Describe budget (max(poll, N/5 s), jittered), decide with the
// planner, deploy, and write tags on change, against a model of the account's token buckets
// (Describe* 100 burst / 20 per s, CreateTags 100 / 10 per s). Ranks are computed once per commit.
//   bun scripts/bench-fleet.ts [--quick] [--nodes 10000] [--check 1000]
// Two engines: "planner" calls planFleet on every read (exact, O(N) a read: used up to --check
// nodes), "model" evaluates the same rules from sorted event times (O(log N) a read: 10,000 nodes).
// Both run the same schedule; the table shows they agree where both run.
import { planFleet } from "../agent/fleet/plan.ts";
import { rankOrder, waveOf, waveSizes } from "../agent/fleet/rank.ts";
import { describeIntervalMs, pagesPerRead, queryIntervalMs } from "../agent/fleet/budget.ts";
import { emptyMemory, type FleetMemory, type Peer, type RolloutSettings } from "../agent/fleet/types.ts";
import { dynamoTable, type DynamoRun } from "./bench-fleet-sim-dynamo.ts";

const S = 1000, M = 60 * S;
const OLD = "a".repeat(40), C = "c".repeat(40);

interface Scenario {
  name: string;
  nodes: number;
  engine: "planner" | "model";
  store: "tags" | "dynamodb";
  pollMs: number; deployMs: number; bakeMs: number; staleMs: number;
  waves: (number | string)[];
  /** dynamodb: at most this many nodes deploying at once. */
  maxInFlight: number;
  /** Describe calls per second the rest of the account makes from the same bucket. */
  otherDescribePerSec: number;
  /** Space reads by the calls a read takes (ceil(N/1000) pages), not by reads (the N/5 s). */
  countPages: boolean;
  /** First read after seeing the pin: at once (within the git poll) or spread over one interval. */
  first: "spread" | "immediate";
  /** The first node to deploy fails (agent:failed=C): how far does the bad commit get? */
  failCanary: boolean;
  seed: number;
}

interface Result {
  durationMs: number | null; waveDoneMs: number[]; describe: number; describePeak: number; throttled: number;
  createTags: number; createTagsPeak: number; ddbReads: number; ddbPeak: number; ranC: number; halted: number; intervalMs: number;
}

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

/** A token bucket on simulated time. */
class Bucket {
  private tokens: number; private at = 0;
  constructor(private burst: number, private perSec: number) { this.tokens = burst; }
  take(t: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) / 1000) * this.perSec);
    this.at = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Events by time: 0 read peers, 1 deploy done, 2 tag write (deploying), 3 tag write (converged or failed). */
class Queue {
  private t: number[] = []; private v: number[] = [];
  get size() { return this.t.length; }
  push(t: number, node: number, kind: number) {
    const v = node * 4 + kind;
    let i = this.t.length; this.t.push(t); this.v.push(v);
    while (i > 0) { const p = (i - 1) >> 1; if (this.t[p]! <= t) break; this.t[i] = this.t[p]!; this.v[i] = this.v[p]!; i = p; }
    this.t[i] = t; this.v[i] = v;
  }
  pop(): [number, number, number] {
    const t0 = this.t[0]!, v0 = this.v[0]!;
    const t = this.t.pop()!, v = this.v.pop()!;
    if (this.t.length) {
      let i = 0; const n = this.t.length;
      for (;;) {
        let c = 2 * i + 1; if (c >= n) break;
        if (c + 1 < n && this.t[c + 1]! < this.t[c]!) c++;
        if (this.t[c]! >= t) break;
        this.t[i] = this.t[c]!; this.v[i] = this.v[c]!; i = c;
      }
      this.t[i] = t; this.v[i] = v;
    }
    return [t0, v0 >> 2, v0 & 3];
  }
}

const upper = (xs: number[], x: number) => { let lo = 0, hi = xs.length; while (lo < hi) { const m = (lo + hi) >> 1; if (xs[m]! <= x) lo = m + 1; else hi = m; } return lo; };

export function simulate(sc: Scenario): Result {
  const n = sc.nodes, random = rng(sc.seed);
  const ids = Array.from({ length: n }, (_, i) => `i-${i.toString(16).padStart(17, "0")}`);
  const order = rankOrder(C, ids);                                  // once per commit
  const rankOf = new Map(order.map((id, r) => [id, r]));
  const sizes = waveSizes(sc.waves, n);
  const waveOfNode = ids.map((id) => waveOf(sizes, rankOf.get(id)!));
  const rollout: RolloutSettings = { waves: sc.waves, bakeMs: sc.bakeMs, deadlineMs: 15 * M, maxFailures: 1, onFailure: "halt" };
  const ddb = sc.store === "dynamodb";
  const stale = ddb ? 0 : sc.staleMs;                               // DynamoDB: strongly consistent reads
  const pages = pagesPerRead(n);
  const interval = () => ddb ? queryIntervalMs(sc.pollMs, n, random()) : describeIntervalMs(sc.pollMs, n, random(), sc.countPages ? pages : 1);
  const describeBucket = new Bucket(100, Math.max(0.1, 20 - sc.otherDescribePerSec));
  const tagBucket = new Bucket(100, 10);
  const q = new Queue();
  const r: Result = { durationMs: null, waveDoneMs: [], describe: 0, describePeak: 0, throttled: 0, createTags: 0, createTagsPeak: 0, ddbReads: 0, ddbPeak: 0, ranC: 0, halted: 0, intervalMs: interval() };
  const perWindow = { d: new Map<number, number>(), c: new Map<number, number>(), q: new Map<number, number>() };
  const bump = (m: Map<number, number>, t: number) => m.set(Math.floor(t / 10_000), (m.get(Math.floor(t / 10_000)) ?? 0) + 1);

  // What each node is, and what others can see of it (tag write time + staleness).
  const moved = new Float64Array(n).fill(NaN), done = new Float64Array(n).fill(NaN);
  const movedVisible = new Float64Array(n).fill(Infinity), doneVisible = new Float64Array(n).fill(Infinity);
  const failed = new Uint8Array(n), stopped = new Uint8Array(n);
  const movedVisibleSorted: number[] = [], doneVisibleSorted: number[] = [];
  const reads: number[][] = ids.map(() => []);
  const memory: FleetMemory[] = sc.engine === "planner" ? ids.map(() => emptyMemory()) : [];
  let inFlight = 0, firstFailure = -1, convergedCount = 0;
  const waveLeft = sizes.map((s, k) => s - (sizes[k - 1] ?? 0));

  for (let i = 0; i < n; i++) q.push(sc.first === "spread" ? random() * r.intervalMs : random() * sc.pollMs, i, 0);

  const decidePlanner = (i: number, t: number): { move: boolean; until: number | null; halted: boolean } => {
    const peers: Peer[] = new Array(n);
    for (let p = 0; p < n; p++) {
      const self = p === i;
      const isDone = self ? !Number.isNaN(done[p]!) : doneVisible[p]! <= t;
      const isMoved = self ? !Number.isNaN(moved[p]!) : movedVisible[p]! <= t;
      const tags: Record<string, string> = isDone
        ? failed[p] ? { "agent:commit": OLD, "agent:state": "failed", "agent:failed": C } : { "agent:commit": C, "agent:state": "converged" }
        : isMoved ? { "agent:commit": OLD, "agent:state": "deploying" } : { "agent:commit": OLD, "agent:state": "converged" };
      tags["agent:version"] = "0.2.0";
      peers[p] = { id: ids[p]!, state: "running", launchedAt: 0, tags };
    }
    const plan = planFleet({ self: ids[i]!, current: OLD, pinned: C, peers, rollout, memory: memory[i]!, order, now: t });
    memory[i] = plan.memory;
    const d = plan.decision;
    return { move: d.kind === "move", until: d.kind === "wait" && d.reason === "Baking" ? d.until : null, halted: d.kind === "halted" || d.kind === "rollback" };
  };

  /** The planner's rules from sorted event times, for one reader (no failures in this engine). */
  const decideModel = (i: number, t: number): { move: boolean; until: number | null; halted: boolean } => {
    const mine = reads[i]!;
    const lastBefore = (x: number) => { const j = upper(mine, x); return j ? mine[j - 1]! : -Infinity; };
    const baked = upper(doneVisibleSorted, lastBefore(t - sc.bakeMs));
    let open = 0;
    while (open + 1 < sizes.length && baked >= sizes[open]!) open++;
    const taken = upper(movedVisibleSorted, t);
    const k = waveOfNode[i]!;
    if (k <= open) return { move: taken < sizes[open]! && (!ddb || inFlight < sc.maxInFlight), until: null, halted: false };
    const need = sizes[k - 1]! - baked, seen = upper(doneVisibleSorted, t);
    if (seen - baked >= need) {
      const firstSeen = mine[upper(mine, doneVisibleSorted[baked + need - 1]! - 1e-9)] ?? t;
      return { move: false, until: firstSeen + sc.bakeMs, halted: false };
    }
    return { move: false, until: null, halted: false };
  };

  const HORIZON = 30 * 24 * 60 * M;
  while (q.size) {
    const [t, i, kind] = q.pop();
    if (t > HORIZON) break;
    if (kind === 0) {
      if (stopped[i] || !Number.isNaN(moved[i]!)) continue;
      if (ddb) { r.ddbReads++; bump(perWindow.q, t); }
      else {
        let got = 0;
        while (got < pages && describeBucket.take(t)) { got++; r.describe++; bump(perWindow.d, t); }
        if (got < pages) { r.describe++; r.throttled++; q.push(t + interval(), i, 0); continue; }   // the throttled page is a call too
      }
      reads[i]!.push(t);
      const d = (sc.engine === "planner" ? decidePlanner : decideModel)(i, t);
      if (d.halted) { stopped[i] = 1; r.halted++; continue; }
      if (d.move) {
        moved[i] = t; inFlight++; r.ranC++;
        q.push(t, i, 2);
        q.push(t + sc.deployMs, i, 1);
      } else q.push(Math.max(t + interval(), d.until ?? 0), i, 0);
    } else if (kind === 1) {
      done[i] = t; inFlight--;
      if (sc.failCanary && firstFailure < 0) { firstFailure = i; failed[i] = 1; }
      q.push(t, i, 3);
    } else {
      if (!tagBucket.take(t)) { q.push(t + 1000, i, kind); continue; }
      r.createTags++; bump(perWindow.c, t);
      if (kind === 2) { movedVisible[i] = t + stale; movedVisibleSorted.push(t + stale); }
      else {
        doneVisible[i] = t + stale;
        if (!failed[i]) {
          doneVisibleSorted.push(t + stale);
          convergedCount++;
          const w = waveOfNode[i]!;
          if (--waveLeft[w]! === 0) r.waveDoneMs[w] = t + stale;
          if (convergedCount === n) r.durationMs = t + stale;
        }
      }
    }
  }
  // sorted inserts: events pop in time order and staleness is constant, so the arrays stay sorted
  r.describePeak = Math.max(0, ...perWindow.d.values()) / 10;
  r.createTagsPeak = Math.max(0, ...perWindow.c.values()) / 10;
  r.ddbPeak = Math.max(0, ...perWindow.q.values()) / 10;
  return r;
}

// ---------- the table ----------

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : dflt; };
const quick = args.includes("--quick");
const N = flag("nodes", quick ? 2000 : 10_000), CHECK = flag("check", quick ? 200 : 1000);
const base: Scenario = {
  name: "", nodes: N, engine: "model", store: "tags", pollMs: 30 * S, deployMs: 60 * S, bakeMs: 2 * M, staleMs: 5 * S,
  waves: [1, "25%", "100%"], maxInFlight: 0, otherDescribePerSec: 0, countPages: false, first: "spread", failCanary: false, seed: 7,
};
const scenarios: Scenario[] = [
  { ...base, name: "planner (exact)", nodes: CHECK, engine: "planner" },
  { ...base, name: "model", nodes: CHECK },
  { ...base, name: "planner, canary fails", nodes: CHECK, engine: "planner", failCanary: true },
  { ...base, name: "model, 100 nodes", nodes: 100 },
  { ...base, name: "model, N/5 s (pages not counted)" },
  { ...base, name: "model, N×pages/5 s" , countPages: true },
  { ...base, name: "model, waves [1, 1%, 10%, 100%]", waves: [1, "1%", "10%", "100%"] },
  { ...base, name: "model, first read at once", first: "immediate" },
  { ...base, name: "model, account busy (16 Describe/s)", otherDescribePerSec: 16 },
  { ...base, name: "dynamodb, maxInFlight 50", store: "dynamodb", maxInFlight: 50 },
  { ...base, name: "dynamodb, maxInFlight 500", store: "dynamodb", maxInFlight: 500 },
];

const min = (ms: number | null | undefined) => ms == null ? "-" : (ms / M).toFixed(1);
console.log(`fleet rollout simulation: poll 30s, deploy 60s, bake 2m, stale reads 5s (tags store), one role; Describe calls count pages (1000 instances a page)`);
console.log("| scenario | nodes | read every | rollout (min) | waves done (min) | Describe calls | peak Describe/s | throttled | CreateTags | peak CreateTags/s | DynamoDB reads | ran C | halted | sim (s) |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
const dynamoRuns: { name: string; run: DynamoRun }[] = [];
for (const sc of scenarios) {
  const t0 = performance.now();
  const r = simulate(sc);
  if (sc.store === "dynamodb") dynamoRuns.push({ name: sc.name, run: { nodes: sc.nodes, durationMs: r.durationMs, ddbReads: r.ddbReads, peakReadsPerSec: r.ddbPeak, ranC: r.ranC, maxInFlight: sc.maxInFlight, deployMs: sc.deployMs, pollMs: sc.pollMs } });
  const took = ((performance.now() - t0) / 1000).toFixed(1);
  const every = sc.store === "dynamodb" ? `${(queryIntervalMs(sc.pollMs, sc.nodes, 0) / S).toFixed(0)}s (table)` : `${(describeIntervalMs(sc.pollMs, sc.nodes, 0, sc.countPages ? pagesPerRead(sc.nodes) : 1) / S).toFixed(0)}s`;
  console.log(`| ${sc.name} | ${sc.nodes} | ${every} | ${min(r.durationMs)} | ${r.waveDoneMs.map(min).join(" / ")} | ${r.describe} | ${r.describePeak.toFixed(1)} | ${r.throttled} | ${r.createTags} | ${r.createTagsPeak.toFixed(1)} | ${r.ddbReads} | ${r.ranC} | ${r.halted} | ${took} |`);
}
console.log("");
for (const line of dynamoTable(dynamoRuns, 2 * M)) console.log(line);
