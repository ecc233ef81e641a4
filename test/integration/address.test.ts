// Elastic IPs: the real EC2 client against the stand-in. One address of the pool per node, never
// taken from another instance; an idle pass makes no EC2 call.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCloudMemory, type CloudContext } from "../../agent/cloud/context.ts";
import { createEc2, type Ec2 } from "../../agent/cloud/ec2.ts";
import { applyAddress, convergeAddress, planAddressNow } from "../../agent/converge/address.ts";
import { ManualClock } from "../../agent/core/clock.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { addressOrder } from "../../agent/plan/address.ts";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";

const ZONE = "us-east-1a";
let dir: string, ec2s: Ec2Server, ec2: Ec2;
const pool = ["eipalloc-000000a1", "eipalloc-000000a2", "eipalloc-000000a3"];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "agent-address-"));
  ec2s = await startEc2({ dataDir: join(dir, "d"), byIdDir: join(dir, "b"), loopDevices: false });
  pool.forEach((id, i) => ec2s.addAddress({ allocationId: id, publicIp: `203.0.113.${i + 1}` }));
  for (const id of ["i-0000000000000000a", "i-0000000000000000b", "i-0000000000000000c", "i-0000000000000000d"]) ec2s.addInstance({ id, zone: ZONE, tags: {} });
  ec2 = createEc2({ region: "us-east-1", endpoint: ec2s.url, credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "x" }, maxAttempts: 2 });
});
afterAll(async () => {
  await ec2s.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ctx = (instanceId: string, over: Partial<CloudContext> = {}): CloudContext => ({
  ec2, instanceId, zone: ZONE, byIdDir: join(dir, "b"), log: memoryLogger(), clock: new ManualClock(1_000_000), memory: createCloudMemory(), ...over,
});
const holder = (id: string) => ec2s.addresses.get(id)!.instanceId;
const release = () => { for (const a of ec2s.addresses.values()) { delete a.instanceId; delete a.associationId; } };

describe("address converge", () => {
  test("associates one address with AllowReassociation=false; idle passes make no EC2 call until the recheck is due", async () => {
    release();
    const me = "i-0000000000000000a";
    const c = ctx(me, { recheckMs: 60_000 });
    const r = await convergeAddress(c, pool);
    expect(r.condition).toMatchObject({ ref: "address", ready: true, reason: "Associated" });
    const mine = pool.filter((id) => holder(id) === me);
    expect(mine).toEqual([addressOrder(pool, me)[0]!]);
    const assoc = ec2s.calls.filter((x) => x.action === "AssociateAddress");
    expect(assoc.at(-1)!.params.AllowReassociation).toBe("false");

    const n = ec2s.calls.length;
    const idle = await convergeAddress(c, pool);
    expect(idle).toMatchObject({ planned: [], condition: { ready: true } });
    expect(ec2s.calls.length).toBe(n);
    (c.clock as ManualClock).advance(60_000);
    expect((await convergeAddress(c, pool)).condition.ready).toBe(true);
    expect(ec2s.calls.slice(n).map((x) => x.action)).toEqual(["DescribeAddresses"]);
  });

  test("a fresh agent finds the address it already holds and associates nothing", async () => {
    const me = "i-0000000000000000a";
    const n = ec2s.calls.length;
    const r = await convergeAddress(ctx(me), pool);
    expect(r.planned).toEqual([]);
    expect(r.condition.ready).toBe(true);
    expect(ec2s.calls.slice(n).map((x) => x.action)).toEqual(["DescribeAddresses"]);
  });

  test("lost race: the first candidate is taken between plan and apply; the next one is used in the same apply", async () => {
    release();
    const me = "i-0000000000000000b";
    const c = ctx(me);
    const p = await planAddressNow(c, pool);
    const first = p.actions[0]!.candidates[0]!;
    // another node wins the first candidate meanwhile
    await ec2.associateAddress(first, "i-0000000000000000c");
    const got = await applyAddress(c, p.actions[0]!);
    expect(got.allocationId).not.toBe(first);
    expect(holder(first)).toBe("i-0000000000000000c");
    expect(holder(got.allocationId)).toBe(me);
    expect(ec2s.calls.filter((x) => x.action === "AssociateAddress" && x.status === 400)).not.toHaveLength(0);
  });

  test("pool exhausted: PoolExhausted, nothing taken from anyone", async () => {
    release();
    const others = ["i-0000000000000000b", "i-0000000000000000c", "i-0000000000000000d"];
    pool.forEach((id, i) => { const a = ec2s.addresses.get(id)!; a.instanceId = others[i]; a.associationId = `eipassoc-${i}`; });
    const n = ec2s.calls.length;
    const r = await convergeAddress(ctx("i-0000000000000000a"), pool);
    expect(r).toMatchObject({ planned: [], condition: { ready: false, reason: "PoolExhausted" } });
    expect(ec2s.calls.slice(n).map((x) => x.action)).toEqual(["DescribeAddresses"]);
    expect(pool.map(holder)).toEqual(others);
  });

  test("EC2 unavailable during observation: blocked with the reason, no action", async () => {
    ec2s.faults.fail5xx = 2;
    const r = await convergeAddress(ctx("i-0000000000000000a"), pool);
    expect(r).toMatchObject({ planned: [], condition: { ready: false, reason: "Ec2Unavailable" } });
  });
});
