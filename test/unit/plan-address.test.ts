// planAddress as a table: the pool, who holds what -> associate or a reason.
import { describe, expect, test } from "bun:test";
import { addressOrder, planAddress } from "../../agent/plan/address.ts";

const pool = ["eipalloc-0000000c", "eipalloc-0000000a", "eipalloc-0000000b"];
const addr = (id: string, instanceId?: string) => ({ allocationId: id, publicIp: `203.0.113.${id.at(-1)!.charCodeAt(0) - 96}`, instanceId });

describe("planAddress", () => {
  test("already ours: converged, reports the address, no action", () => {
    const p = planAddress({ pool, instanceId: "i-1" }, { addresses: [addr(pool[0]!, "i-2"), addr(pool[1]!, "i-1"), addr(pool[2]!)] });
    expect(p.actions).toEqual([]);
    expect(p.condition).toMatchObject({ ready: true, reason: "Associated" });
    expect(p.condition.message).toContain("eipalloc-0000000a");
  });
  test("free ones: one associate action listing only free addresses, in this node's order", () => {
    const p = planAddress({ pool, instanceId: "i-1" }, { addresses: [addr(pool[0]!), addr(pool[1]!, "i-2"), addr(pool[2]!)] });
    expect(p.actions).toHaveLength(1);
    expect(p.actions[0]!.kind).toBe("address.associate");
    expect(p.actions[0]!.candidates.sort()).toEqual(["eipalloc-0000000b", "eipalloc-0000000c"]);
    expect(p.condition).toMatchObject({ ready: false, reason: "NotAssociated" });
  });
  test("pool exhausted", () => {
    const p = planAddress({ pool, instanceId: "i-1" }, { addresses: pool.map((id) => addr(id, "i-9")) });
    expect(p).toMatchObject({ actions: [], condition: { ready: false, reason: "PoolExhausted" } });
  });
  test("empty pool", () => {
    expect(planAddress({ pool: [], instanceId: "i-1" }, { addresses: [] }).condition.reason).toBe("NoAddressPool");
  });
  test("order: stable for one instance, a rotation of the sorted pool, spread over instances", () => {
    const sorted = [...pool].sort();
    const o = addressOrder(pool, "i-0abc");
    expect(addressOrder([...pool].reverse(), "i-0abc")).toEqual(o);
    const start = sorted.indexOf(o[0]!);
    expect(o).toEqual([...sorted.slice(start), ...sorted.slice(0, start)]);
    const firsts = new Set(Array.from({ length: 30 }, (_, i) => addressOrder(pool, `i-${i.toString(16).padStart(17, "0")}`)[0]));
    expect(firsts.size).toBe(3);
  });
});
