// The DynamoDB rollout store on the real client against dynalite: strongly consistent paginated
// reads, conditional takes (two nodes never hold the last slot), lease expiry by the waiter's clock
// through planLease, and throttling/5xx retried then reported.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRolloutTable, partitionOf, type RolloutTable } from "../../agent/cloud/dynamodb.ts";
import type { AgentError } from "../../agent/core/errors.ts";
import { planLease, type LeaseMemory } from "../../agent/fleet/lease.ts";
import { createRolloutTableFor, startDynamoDb, type DynamoDbServer } from "../servers/dynamodb.ts";

let server: DynamoDbServer;
const TABLE = "agent-rollout";
const table = (o: { pageSize?: number; maxAttempts?: number } = {}): RolloutTable =>
  createRolloutTable({ region: "us-east-1", table: TABLE, endpoint: server.url, credentials: { accessKeyId: "a", secretAccessKey: "s" }, ...o });

beforeAll(async () => { server = await startDynamoDb(); await createRolloutTableFor(server.url, TABLE); });
afterAll(async () => { await server.stop(); });

describe("DynamoDB rollout table", () => {
  test("publish then read: every page of a consistent Query, slots apart from node records, other partitions not read", async () => {
    const P = partitionOf("production", "web");
    for (let n = 0; n < 23; n++) await table().publish(P, { instance: `i-${String(n).padStart(4, "0")}`, commit: "c1", state: "converged", failed: null, since: "2026-12-01T00:00:00Z", version: "0.2.0" });
    await table().publish(partitionOf("production", "db"), { instance: "i-db", commit: "c1", state: "converged", failed: null, since: null, version: null });
    expect(await table().take(P, 0, "i-0001", null)).toBe(true);
    server.calls.length = 0;
    const r = await table({ pageSize: 5 }).read(P);
    expect(r.nodes.length).toBe(23);
    expect(r.nodes[3]).toEqual({ instance: "i-0003", commit: "c1", state: "converged", failed: null, since: "2026-12-01T00:00:00Z", version: "0.2.0" });
    expect(r.slots).toEqual([{ slot: 0, holder: "i-0001", version: 1 }]);
    expect(server.calls.filter((c) => c === "Query").length).toBe(5);   // 24 items, 5 a page
    server.calls.length = 0;
    expect(await table({ pageSize: 5 }).readSlots(P)).toEqual(r.slots);   // the slots alone: one page
    expect(server.calls).toEqual(["Query"]);
    // A write is seen by the very next read (ConsistentRead).
    await table().publish(P, { instance: "i-0003", commit: "c2", state: "deploying", failed: null, since: null, version: "0.2.0" });
    expect((await table().read(P)).nodes.find((x) => x.instance === "i-0003")!.state).toBe("deploying");
  });

  test("two nodes racing for the last slot: exactly one takes it", async () => {
    const P = partitionOf("production", "race");
    const a = planLease({ self: "i-a", slots: (await table().read(P)).slots, maxInFlight: 1, leaseMs: 60_000, memory: {}, now: 0 }).decision;
    const b = planLease({ self: "i-b", slots: (await table().read(P)).slots, maxInFlight: 1, leaseMs: 60_000, memory: {}, now: 0 }).decision;
    expect(a).toEqual({ kind: "take", slot: 0, expect: null });
    expect(b).toEqual(a);
    const won = await Promise.all([table().take(P, 0, "i-a", null), table().take(P, 0, "i-b", null)]);
    expect(won.filter(Boolean).length).toBe(1);
    const holder = (await table().read(P)).slots[0]!.holder;
    expect(holder).toBe(won[0] ? "i-a" : "i-b");
    expect(await table().beat(P, 0, holder === "i-a" ? "i-b" : "i-a")).toBe(false);   // the loser cannot heartbeat it
    await table().release(P, 0, holder!);
    expect((await table().read(P)).slots[0]!.holder).toBeNull();
  });

  test("a lease expires only when the holder's version stays the same for the lease on the waiter's clock", async () => {
    const P = partitionOf("production", "lease");
    const L = 60_000;
    expect(await table().take(P, 0, "i-holder", null)).toBe(true);
    let mem: LeaseMemory = {};
    const look = async (now: number) => {
      const r = planLease({ self: "i-waiter", slots: (await table().read(P)).slots, maxInFlight: 1, leaseMs: L, memory: mem, now });
      mem = r.memory;
      return r.decision;
    };
    expect((await look(1_000_000)).kind).toBe("wait");
    expect(await table().beat(P, 0, "i-holder")).toBe(true);            // the holder is alive
    expect((await look(1_000_000 + L)).kind).toBe("wait");               // a lease after the first look, but the version moved
    const d = await look(1_000_000 + 2 * L);                              // no beat for a whole lease
    expect(d).toEqual({ kind: "take", slot: 0, expect: { holder: "i-holder", version: 2 } });
    if (d.kind !== "take") throw new Error("unreachable");
    // The holder beats just before the steal lands: the conditional write refuses the steal.
    expect(await table().beat(P, 0, "i-holder")).toBe(true);
    expect(await table().take(P, 0, "i-waiter", d.expect)).toBe(false);
    // Now it is silent for a lease: the steal succeeds and the old holder's heartbeat fails.
    const d2 = await look(1_000_000 + 3 * L);
    expect((await look(1_000_000 + 4 * L)).kind).toBe("take");
    expect(d2.kind).toBe("wait");
    expect(await table().take(P, 0, "i-waiter", { holder: "i-holder", version: 3 })).toBe(true);
    expect(await table().beat(P, 0, "i-holder")).toBe(false);
  });

  test("throttling and 5xx are retried by the client, then reported with a reason", async () => {
    const P = partitionOf("production", "faults");
    server.fail(2, "throttle");
    await table({ maxAttempts: 4 }).publish(P, { instance: "i-x", commit: "c", state: "converged", failed: null, since: null, version: null });
    server.fail(2, "5xx");
    expect((await table({ maxAttempts: 4 }).read(P)).nodes.length).toBe(1);
    server.fail(3, "throttle");
    const e = await table({ maxAttempts: 2 }).read(P).then(() => null, (x) => x as AgentError);
    expect(e?.reason).toBe("DynamoDbThrottled");
    server.fail(0, "throttle");
    const missing = await createRolloutTable({ region: "us-east-1", table: "nope", endpoint: server.url, credentials: { accessKeyId: "a", secretAccessKey: "s" } }).read(P).then(() => null, (x) => x as AgentError);
    expect(missing?.reason).toBe("RolloutTableMissing");
    expect(missing?.message).toContain("rollout.table");
  });
});
