// The rollout gate with rollout.store: dynamodb, in the tick, on the real DynamoDB client against
// dynalite (other ports in memory): peers come from the table, a node publishes its own record, and
// with maxInFlight a taken slot holds the cutover back even when the planner says move, until the
// holder's version has not moved for a lease on this node's clock; the slot is given back after.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../../agent/core/clock.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { createRolloutTable, partitionOf } from "../../agent/cloud/dynamodb.ts";
import { Config, Manifest, Role } from "../../agent/manifest/schema.ts";
import type { Ports, ReleaseInfo } from "../../agent/loop/ports.ts";
import { rolloutTablePort } from "../../agent/loop/rollout-table.ts";
import { newMemory, tick } from "../../agent/loop/tick.ts";
import { layout } from "../../agent/state/layout.ts";
import { StateStore } from "../../agent/state/store.ts";
import { createRolloutTableFor, startDynamoDb, type DynamoDbServer } from "../servers/dynamodb.ts";

const A = "a".repeat(40), B = "b".repeat(40);
const TABLE = "agent-rollout", P = partitionOf("staging", "web");
let server: DynamoDbServer, dir: string;
const table = (region = "us-east-1") => createRolloutTable({ region, table: TABLE, endpoint: server.url, credentials: { accessKeyId: "a", secretAccessKey: "s" } });

beforeAll(async () => { server = await startDynamoDb(); await createRolloutTableFor(server.url, TABLE); dir = mkdtempSync(join(tmpdir(), "gate-ddb-")); });
afterAll(async () => { await server.stop(); rmSync(dir, { recursive: true, force: true }); });

function ports(w: { manifest: Record<string, unknown>; current: string | null }, self: string, clock: ManualClock, withTable: boolean): Ports {
  const L = layout(join(dir, self + (withTable ? "" : "-none")));
  const releases = new Map<string, ReleaseInfo>();
  const id = { instanceId: self, region: "us-east-1", zone: "us-east-1a", role: "web", environment: "staging" };
  let tip = 0;
  const log = memoryLogger();
  return {
    config: Config.parse({ repo: "http://127.0.0.1:1/ops.git", stateDir: L.root, identity: "imds" }),
    layout: L, store: new StateStore(L.stateFile), clock, log,
    identity: { resolve: async () => ({ identity: id }) },
    source: {
      poll: async () => ({ tip: String(++tip).padStart(40, "1"), moved: true }),
      readManifest: async () => ({ ok: true, value: Manifest.parse(w.manifest), file: "manifests/staging.yaml" }),
      ensureCommit: async (c) => ({ subject: c.slice(0, 4) }),
      readRole: async () => Role.parse({ processes: { web: { run: "app" } } }),
    },
    releases: {
      info: (c) => releases.get(c) ?? { state: "missing" },
      current: () => w.current,
      prepare: async (c) => { releases.set(c, { state: "ready" }); },
      switchCurrent: (c) => { w.current = c; },
      mark: (c, state) => { releases.set(c, { ...releases.get(c), state, since: new Date(clock.now()).toISOString() }); },
      runHook: async () => {}, prune: () => {},
    },
    processes: { ensure: async () => {}, replace: async () => ({ ok: true }), stopAll: async () => {}, status: () => [], healthy: () => true },
    cloud: {
      volumes: () => [], address: () => null,
      syncTags: async (_i, want, last) => ({ ...last, ...want }),
      peers: async () => { throw new Error("store: dynamodb must not read EC2 tags"); },
      rolloutTable: rolloutTablePort(withTable ? (region) => table(region) : null, clock, log),
    },
  };
}

const ROLLOUT = { waves: ["100%"], store: "dynamodb", maxInFlight: 1, lease: "1m" };

describe("the rollout gate with store: dynamodb", () => {
  test("a slot held by another node holds the cutover back until its lease expires on this node's clock; then the slot is taken and given back", async () => {
    for (const i of ["i-02", "i-03"]) await table().publish(P, { instance: i, commit: A, state: "converged", failed: null, since: null, version: "1" });
    const clock = new ManualClock(1_000_000, [0]);
    const w = { manifest: { commit: A, poll: "1s" } as Record<string, unknown>, current: null as string | null };
    const p = ports(w, "i-01", clock, true), mem = newMemory();
    expect((await tick(p, mem, { mode: "run" })).converged).toBe(true);
    expect((await table().read(P)).nodes.find((n) => n.instance === "i-01")).toMatchObject({ commit: A, state: "converged" });   // published beside its tags

    // i-02 took the only slot and stopped (its record still says converged: the planner sees room).
    expect(await table().take(P, 0, "i-02", null)).toBe(true);
    w.manifest = { commit: B, poll: "1s", rollout: ROLLOUT };
    let r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);
    expect(r.status.notices.join("\n")).toContain("waiting for a deploy slot (maxInFlight 1, held by i-02)");
    clock.advance(30_000);
    r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);                                   // half a lease: still held
    clock.advance(31_000);
    r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(B);                                   // a whole lease without a heartbeat: taken
    const after = await table().read(P);
    expect(after.slots).toEqual([{ slot: 0, holder: null, version: 3 }]);   // taken (2), given back once converged (3)
    expect(after.nodes.find((n) => n.instance === "i-01")).toMatchObject({ commit: B, state: "converged" });
  });

  test("store: dynamodb without rollout.table in the node config: the cutover waits and says which field to set", async () => {
    const clock = new ManualClock(1_000_000, [0]);
    const w = { manifest: { commit: A, poll: "1s" } as Record<string, unknown>, current: null as string | null };
    const p = ports(w, "i-07", clock, false), mem = newMemory();
    await tick(p, mem, { mode: "run" });
    w.manifest = { commit: B, poll: "1s", rollout: ROLLOUT };
    const r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);
    expect(r.status.notices.join("\n")).toContain("rollout: { table: NAME }");
  });
});
