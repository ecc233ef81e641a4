// The node's Elastic IP: observe (from memory while EC2 confirmed it recently), associate one
// free address of the pool. The loop calls this step only once the role's processes are
// healthy, so traffic reaches a node that can serve it; nothing here checks that.
import { AgentError, toAgentError } from "../core/errors.ts";
import { failed, observed, type Observed } from "../core/result.ts";
import { ADDRESS_REF, planAddress, type AddressAction, type AddressObserved, type AddressPlan } from "../plan/address.ts";
import type { ResourceStatus } from "../status/types.ts";
import { DEFAULT_RECHECK_MS, type CloudContext } from "../cloud/context.ts";

/**
 * Observe the pool. Read-only. While the address we associated was confirmed less than
 * recheckMs ago, answers from memory without an EC2 call.
 */
export async function observeAddress(ctx: CloudContext, pool: string[]): Promise<Observed<AddressObserved>> {
  const now = ctx.clock.now();
  const mem = ctx.memory.address;
  if (mem && pool.includes(mem.allocationId) && now - mem.checkedAt < (ctx.recheckMs ?? DEFAULT_RECHECK_MS)) {
    return observed({ addresses: [{ allocationId: mem.allocationId, publicIp: mem.publicIp, instanceId: ctx.instanceId }] });
  }
  try {
    const addresses = await ctx.ec2.describeAddresses([...pool].sort());
    const mine = addresses.find((a) => a.instanceId === ctx.instanceId);
    ctx.memory.address = mine ? { allocationId: mine.allocationId, publicIp: mine.publicIp, checkedAt: now } : null;
    return observed({ addresses });
  } catch (e) {
    ctx.memory.address = null;
    return failed(toAgentError(e, "AddressObserveFailed"));
  }
}

/** Observe and plan; a failed observation is a blocked condition with no actions. Read-only. */
export async function planAddressNow(ctx: CloudContext, pool: string[]): Promise<AddressPlan> {
  const o = await observeAddress(ctx, pool);
  if (!o.ok) return { actions: [], condition: { ref: ADDRESS_REF, ready: false, reason: o.error.reason, message: o.error.message } };
  return planAddress({ pool, instanceId: ctx.instanceId }, o.value);
}

/**
 * Associate the first candidate that is still free (AllowReassociation=false: never taken from
 * another instance). A lost race moves on to the next candidate in the same apply; when all are
 * taken, throws AgentError "PoolExhausted" (transient).
 */
export async function applyAddress(ctx: CloudContext, a: AddressAction): Promise<{ allocationId: string }> {
  const log = ctx.log.child("address");
  for (const id of a.candidates) {
    try {
      await ctx.ec2.associateAddress(id, ctx.instanceId);
    } catch (e) {
      if (e instanceof AgentError && e.reason === "AddressAlreadyAssociated") {
        log.info("lost the race for an address, trying the next", { allocationId: id });
        continue;
      }
      throw e;
    }
    const [got] = await ctx.ec2.describeAddresses([id]);
    if (got?.instanceId !== ctx.instanceId) {
      throw new AgentError("AddressNotAssociated", `EC2 accepted ${id} for ${ctx.instanceId} but describes it elsewhere; the next tick looks again`);
    }
    ctx.memory.address = { allocationId: id, publicIp: got.publicIp, checkedAt: ctx.clock.now() };
    log.info("associated", { allocationId: id, publicIp: got.publicIp });
    return { allocationId: id };
  }
  throw new AgentError("PoolExhausted", `every free address of the pool was taken by another instance meanwhile: add one to the manifest's pool`);
}

/** A node-level resource as the loop drives it (only after the processes are healthy). */
export function addressResource(ctx: CloudContext, pool: string[]) {
  return {
    ref: ADDRESS_REF,
    plan: () => planAddressNow(ctx, pool),
    apply: async (a: { kind: string }) => { await applyAddress(ctx, a as AddressAction); },
  };
}

/** plan, apply, plan again (from memory): the condition after one pass. Never throws. */
export async function convergeAddress(ctx: CloudContext, pool: string[]): Promise<{ planned: AddressAction[]; condition: ResourceStatus }> {
  const first = await planAddressNow(ctx, pool);
  try {
    for (const a of first.actions) await applyAddress(ctx, a);
  } catch (e) {
    const err = toAgentError(e);
    return { planned: first.actions, condition: { ref: ADDRESS_REF, ready: false, reason: err.reason, message: err.message } };
  }
  return { planned: first.actions, condition: first.actions.length ? (await planAddressNow(ctx, pool)).condition : first.condition };
}
