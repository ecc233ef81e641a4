// The rollout gate with rollout.store: dynamodb, in the tick, on the real DynamoDB client against
// dynalite (other ports in memory, test/unit/gate-ports.ts): peers come from the table, a node
// publishes its own record, and with maxInFlight a taken slot holds the cutover back even when the
// planner says move, until the holder's version has not moved for a lease on this node's clock; the
// slot is given back after. Records of instances EC2 (the stand-in, real EC2 client) says are gone
// stop counting and are deleted; a live but silent one is kept.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ManualClock } from "../../agent/core/clock.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { createEc2 } from "../../agent/cloud/ec2.ts";
import { createRolloutTable, partitionOf } from "../../agent/cloud/dynamodb.ts";
import { rankOrder } from "../../agent/fleet/rank.ts";
import { rolloutTablePort, type InstanceStates } from "../../agent/loop/rollout-table.ts";
import { newMemory, tick } from "../../agent/loop/tick.ts";
import { A, B, IDS, World, gatePorts } from "../unit/gate-ports.ts";
import { createRolloutTableFor, startDynamoDb, type DynamoDbServer } from "../servers/dynamodb.ts";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";

const TABLE = "agent-rollout", P = partitionOf("staging", "web");
let server: DynamoDbServer, ec2: Ec2Server, dir: string;
const table = (name = TABLE) => createRolloutTable({ region: "us-east-1", table: name, endpoint: server.url, credentials: { accessKeyId: "a", secretAccessKey: "s" } });
const states: InstanceStates = (_id, ids, ms) => createEc2({ region: "us-east-1", endpoint: ec2.url, credentials: { accessKeyId: "a", secretAccessKey: "s" } }).instanceStates(ids, ms);

beforeAll(async () => {
  server = await startDynamoDb();
  dir = mkdtempSync(join(tmpdir(), "gate-ddb-"));
  ec2 = await startEc2({ dataDir: join(dir, "ec2"), byIdDir: join(dir, "by-id"), loopDevices: false });
  for (const name of [TABLE, "live", "blind"]) await createRolloutTableFor(server.url, name);
});
afterAll(async () => { await server.stop(); await ec2.stop(); rmSync(dir, { recursive: true, force: true }); });

/** Node `self` on the DynamoDB store of table `name` (with `ec2`: it may ask EC2 about silent records). */
function node(self: string, clock: ManualClock, o: { name?: string | null; ec2?: boolean } = {}) {
  const w = new World(), log = memoryLogger();
  const tableFor = o.name === null ? null : () => table(o.name ?? TABLE);
  const p = gatePorts(w, join(dir, `${self}-${o.name ?? "none"}`), self, clock, { log, table: rolloutTablePort(tableFor, clock, log, o.ec2 ? states : null) });
  return { w, p, mem: newMemory() };
}

const ROLLOUT = { waves: ["100%"], store: "dynamodb", maxInFlight: 1, lease: "1m" };

describe("the rollout gate with store: dynamodb", () => {
  test("a slot held by another node holds the cutover back until its lease expires on this node's clock; then the slot is taken and given back", async () => {
    for (const i of ["i-02", "i-03"]) await table().publish(P, { instance: i, commit: A, state: "converged", failed: null, since: null, version: "1" });
    const clock = new ManualClock(1_000_000, [0]);
    const { w, p, mem } = node("i-01", clock, { name: TABLE });
    expect((await tick(p, mem, { mode: "run" })).converged).toBe(true);
    expect((await table().read(P)).nodes.find((n) => n.instance === "i-01")).toMatchObject({ commit: A, state: "converged" });   // published beside its tags

    // i-02 took the only slot and stopped (its record still says converged: the planner sees room).
    expect(await table().take(P, 0, "i-02", null)).toBe(true);
    w.manifest = { commit: B, poll: "1s", rollout: ROLLOUT };
    server.calls.length = 0;
    let r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);
    expect(r.status.notices.join("\n")).toContain("waiting for a deploy slot (maxInFlight 1, held by i-02)");
    clock.advance(100);                                          // before the next paced read: waiting only for the slot, the slots alone are read
    const before = server.calls.length;
    await tick(p, mem, { mode: "run" });
    expect(server.calls.slice(before)).toEqual(["Query"]);
    clock.advance(30_000);
    r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);                                   // half a lease: still held
    clock.advance(31_000);
    r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(B);                                   // a whole lease without a heartbeat: taken
    const after = await table().read(P);
    expect(after.slots).toEqual([{ slot: 0, holder: null, version: 3 }]);   // taken (2), given back once converged (3)
    expect(after.nodes.find((n) => n.instance === "i-01")).toMatchObject({ commit: B, state: "converged" });
    expect(w.reads).toBe(0);                                     // the EC2 tags were never read
  });

  test("store: dynamodb without rollout.table in the node config: the cutover waits and says which field to set", async () => {
    const clock = new ManualClock(1_000_000, [0]);
    const { w, p, mem } = node("i-07", clock, { name: null });
    await tick(p, mem, { mode: "run" });
    w.manifest = { commit: B, poll: "1s", rollout: ROLLOUT };
    const r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);
    expect(r.status.notices.join("\n")).toContain("rollout: { table: NAME }");
  });
});

describe("records of instances that are gone (store: dynamodb)", () => {
  // waves [2, 100%]: SELF (last in B's order) waits for the first two; DEAD's instance is terminated, LIVE's runs but writes nothing.
  const [DEAD, LIVE, SELF] = rankOrder(B, IDS) as [string, string, string];
  const WAVES = { waves: [2, "100%"], bake: "1s", store: "dynamodb", lease: "1m" };
  const seed = async (name: string) => {
    for (const i of [DEAD, LIVE]) await table(name).publish(P, { instance: i, commit: A, state: "converged", failed: null, since: null, version: "1" });
  };

  test("a record whose instance EC2 says is terminated stops blocking once silent for a lease, and is deleted; a live but silent one is kept", async () => {
    await seed("live");
    for (const id of IDS) ec2.addInstance({ id, zone: "us-east-1a", tags: {}, state: id === DEAD ? "terminated" : "running" });
    const clock = new ManualClock(1_000_000, [0]);
    const { w, p, mem } = node(SELF, clock, { name: "live", ec2: true });
    await tick(p, mem, { mode: "run" });
    w.manifest = { commit: B, poll: "1s", rollout: WAVES };
    ec2.calls.length = 0;
    let r = await tick(p, mem, { mode: "run" });
    expect(r.status.rollout).toMatchObject({ decision: "wait", reason: "EarlierWave", waitingFor: [DEAD, LIVE] });   // in rank order
    expect(ec2.calls).toEqual([]);                                // not silent for a lease yet: no EC2 call
    clock.advance(61_000);
    r = await tick(p, mem, { mode: "run" });
    const describes = ec2.calls.filter((c) => c.action === "DescribeInstances");
    expect(describes.length).toBe(1);                             // one filtered call for both silent peers
    expect(describes[0]!.params).toMatchObject({ "Filter.1.Name": "instance-id" });
    expect(w.current).toBe(B);                                    // N = 2: one wave of both, LIVE not deploying: room
    const left = (await table("live").read(P)).nodes.map((n) => n.instance).sort();
    expect(left).toEqual([LIVE, SELF].sort());                    // DEAD's record deleted, LIVE's kept
  });

  test("a record that changed since it was read is not deleted; without EC2 access the node says so and keeps waiting", async () => {
    await seed("blind");
    const rec = { instance: DEAD, commit: A, state: "converged", failed: null, since: null, version: "1" };
    await table("blind").publish(P, { ...rec, state: "deploying" });           // it came back and wrote
    expect(await table("blind").remove(P, rec)).toBe(false);
    expect((await table("blind").read(P)).nodes.map((n) => n.instance)).toContain(DEAD);
    await table("blind").publish(P, rec);

    const clock = new ManualClock(1_000_000, [0]);
    const { w, p, mem } = node(SELF, clock, { name: "blind", ec2: false });
    await tick(p, mem, { mode: "run" });
    w.manifest = { commit: B, poll: "1s", rollout: WAVES };
    await tick(p, mem, { mode: "run" });
    clock.advance(61_000);
    const r = await tick(p, mem, { mode: "run" });
    expect(w.current).toBe(A);
    expect(r.status.notices.join("\n")).toContain(`cannot ask EC2 whether ${[DEAD, LIVE].sort().join(", ")} still run (this node has no EC2 identity)`);
    expect((await table("blind").read(P)).nodes.map((n) => n.instance)).toContain(DEAD);
  });
});
