// The Elastic IP planner: one address of the environment's pool per node. Pure.
// Choice: each node starts at an index derived from a hash of its instance id over the sorted
// pool, so nodes spread over the pool instead of all racing for the first address.
import type { ResourceStatus } from "../status/types.ts";
import type { ActionBase } from "./types.ts";

export interface AddressDesired { pool: string[]; instanceId: string }
export interface AddressObserved { addresses: { allocationId: string; publicIp: string; instanceId?: string | null }[] }

export type AddressAction = ActionBase & {
  kind: "address.associate";
  /** Free addresses in the order to try; the next one is tried when another node wins a race. */
  candidates: string[];
};

export interface AddressPlan { actions: AddressAction[]; condition: ResourceStatus }

export const ADDRESS_REF = "address";

/** FNV-1a, 32 bits: stable across runs and machines. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h >>> 0;
}

/** The pool in the order this instance tries it: sorted, rotated to start at hash(instanceId). */
export function addressOrder(pool: string[], instanceId: string): string[] {
  const sorted = [...new Set(pool)].sort();
  if (sorted.length === 0) return [];
  const start = hashString(instanceId) % sorted.length;
  return [...sorted.slice(start), ...sorted.slice(0, start)];
}

/** Plan the node's address: converged when one of the pool's is ours, else try the free ones. */
export function planAddress(d: AddressDesired, o: AddressObserved): AddressPlan {
  const cond = (ready: boolean, reason: string, message: string): ResourceStatus => ({ ref: ADDRESS_REF, ready, reason, message });
  const inPool = o.addresses.filter((a) => d.pool.includes(a.allocationId));
  const mine = inPool.filter((a) => a.instanceId === d.instanceId).sort((a, b) => a.allocationId.localeCompare(b.allocationId))[0];
  if (mine) return { actions: [], condition: cond(true, "Associated", `${mine.publicIp} (${mine.allocationId})`) };
  if (d.pool.length === 0) return { actions: [], condition: cond(false, "NoAddressPool", "the role asks for an address but the manifest binds no addresses: list allocation ids under roles.<role>.addresses") };
  const byId = new Map(inPool.map((a) => [a.allocationId, a]));
  const missing = d.pool.filter((id) => !byId.has(id));
  const free = addressOrder(d.pool, d.instanceId).filter((id) => byId.has(id) && !byId.get(id)!.instanceId);
  if (free.length === 0) {
    const extra = missing.length ? `; not found: ${missing.join(", ")}` : "";
    return { actions: [], condition: cond(false, "PoolExhausted", `all ${d.pool.length} addresses of the pool are held by other instances${extra}: add one to the manifest's pool`) };
  }
  return {
    actions: [{ kind: "address.associate", ref: ADDRESS_REF, candidates: free, description: `associate an Elastic IP (${free[0]} first, of ${free.length} free) with ${d.instanceId}` }],
    condition: cond(false, "NotAssociated", `no address of the pool is associated with ${d.instanceId}`),
  };
}
