// The rollout gate's test node, shared by test/unit/gate.test.ts (the tags store in memory) and
// test/integration/gate-dynamodb.test.ts (the DynamoDB store on the real client): in-memory ports
// for everything else, a World the test changes between ticks.
import { ManualClock } from "../../agent/core/clock.ts";
import { memoryLogger, type Logger } from "../../agent/core/log.ts";
import type { PeerInfo } from "../../agent/cloud/ec2.ts";
import { Config, Manifest, Role } from "../../agent/manifest/schema.ts";
import type { Ports, ReleaseInfo } from "../../agent/loop/ports.ts";
import type { RolloutTablePort } from "../../agent/loop/rollout-table.ts";
import { tagsStore } from "../../agent/loop/rollout-tags.ts";
import { layout } from "../../agent/state/layout.ts";
import { StateStore } from "../../agent/state/store.ts";

export const A = "a".repeat(40), B = "b".repeat(40);
export const IDS = ["i-01", "i-02", "i-03"];

export class World {
  manifest: Record<string, unknown> = { commit: A, poll: "1s" };
  releases = new Map<string, ReleaseInfo>();
  current: string | null = null;
  prepared: string[] = [];
  peers: PeerInfo[] = IDS.map((id) => ({ id, state: "running", launchedAt: null, role: "web", tags: { "agent:commit": A, "agent:state": "converged", "agent:version": "1" } }));
  /** Reads of the tags store. */
  reads = 0;
  /** What a read of the tags store answers (a test may replace it). */
  read = async (): Promise<PeerInfo[]> => { this.reads++; return this.peers; };
  /** agent:state of every tag write, and the commit current named then. */
  writes: string[] = [];
}

/** Node `self` of environment staging, role web, its state in `dir`; with `table`, rollout.store: dynamodb reads it. */
export function gatePorts(w: World, dir: string, self: string, clock = new ManualClock(1_000_000, [0]), o: { table?: RolloutTablePort; log?: Logger } = {}): Ports {
  const L = layout(dir);
  const id = { instanceId: self, region: "us-east-1", zone: "us-east-1a", role: "web", environment: "staging" };
  const tags = tagsStore(() => w.read());
  let tip = 0;
  return {
    config: Config.parse({ repo: "http://127.0.0.1:1/ops.git", stateDir: dir, identity: "imds" }),
    layout: L, store: new StateStore(L.stateFile), clock, log: o.log ?? memoryLogger(),
    identity: { resolve: async () => ({ identity: id }) },
    source: {
      poll: async () => ({ tip: String(++tip).padStart(40, "1"), moved: true }),
      readManifest: async () => ({ ok: true, value: Manifest.parse(w.manifest), file: "manifests/staging.yaml" }),
      ensureCommit: async (c) => ({ subject: c.slice(0, 4) }),
      readRole: async () => Role.parse({ processes: { web: { run: "app" } } }),
    },
    releases: {
      info: (c) => w.releases.get(c) ?? { state: "missing" },
      current: () => w.current,
      prepare: async (c) => { w.prepared.push(c); w.releases.set(c, { state: "ready" }); },
      switchCurrent: (c) => { w.current = c; },
      mark: (c, state) => { w.releases.set(c, { ...w.releases.get(c), state, since: new Date(clock.now()).toISOString() }); },
      runHook: async () => {},
      prune: () => {},
    },
    processes: {
      ensure: async () => {}, replace: async () => ({ ok: true }), stopAll: async () => {},
      status: () => [], healthy: () => true,
    },
    cloud: {
      volumes: () => [], address: () => null,
      syncTags: async (_i, want, last) => { w.writes.push(`${want["agent:state"]}@${want["agent:commit"]!.slice(0, 1)}`); return { ...last, ...want }; },
      rolloutStore: (name) => name === "dynamodb" ? o.table ?? null : tags,
      ...(o.table ? { rolloutTable: o.table } : {}),
    },
  };
}
