// Who this node is: instance id, region and zone from IMDSv2; role and environment from its
// instance tags (IMDS when tags are exposed there, else EC2 DescribeTags). When IMDS is down,
// the identity cached in state.json keeps the node going, and the result says so.
import type { CachedIdentity } from "../state/store.ts";
import { AgentError, errorMessage } from "../core/errors.ts";
import type { Ec2 } from "./ec2.ts";
import type { Imds } from "./imds.ts";

export interface IdentityDeps {
  imds: Imds;
  /** Builds the EC2 client for the region IMDS reported (only used when tags are not in IMDS). */
  ec2Factory: (region: string) => Ec2;
  tagNames: { role: string; environment: string };
  /** state.json's `identity`, or null on first boot. */
  cached: CachedIdentity | null;
  now: () => number;
}

export interface ResolvedIdentity {
  identity: CachedIdentity;
  source: "imds" | "cache";
  /** A sentence for the status when the cached identity was used. */
  warning?: string;
}

async function must(imds: Imds, path: string): Promise<string> {
  const v = await imds.get(path);
  if (v === null || v.trim() === "") {
    throw new AgentError("ImdsUnavailable", `instance metadata has no ${path}; is this an EC2 instance?`);
  }
  return v.trim();
}

async function readTags(deps: IdentityDeps, instanceId: string, region: string): Promise<{ role: string | null; environment: string | null }> {
  const names = [deps.tagNames.role, deps.tagNames.environment];
  const listing = await deps.imds.get("latest/meta-data/tags/instance");
  if (listing !== null) {
    const keys = new Set(listing.split("\n").map((k) => k.trim()).filter(Boolean));
    const [role, environment] = await Promise.all(names.map(async (n) =>
      keys.has(n) ? ((await deps.imds.get(`latest/meta-data/tags/instance/${encodeURIComponent(n)}`))?.trim() || null) : null));
    return { role: role ?? null, environment: environment ?? null };
  }
  // Tags are not exposed in IMDS (InstanceMetadataTags=disabled): ask EC2, with the instance role.
  const tags = await deps.ec2Factory(region).describeInstanceTags(instanceId);
  return { role: tags[deps.tagNames.role]?.trim() || null, environment: tags[deps.tagNames.environment]?.trim() || null };
}

/**
 * Resolve the node's identity. Read-only (the caller stores the result in state.json).
 * IMDS or EC2 failing with a cache: the cache, source "cache", and a warning. Without a cache:
 * throws AgentError "IdentityUnavailable" (transient: the next tick asks again).
 */
export async function resolveIdentity(deps: IdentityDeps): Promise<ResolvedIdentity> {
  try {
    const instanceId = await must(deps.imds, "latest/meta-data/instance-id");
    const zone = await must(deps.imds, "latest/meta-data/placement/availability-zone");
    const region = (await deps.imds.get("latest/meta-data/placement/region"))?.trim() || zone.replace(/[a-z]$/, "");
    const { role, environment } = await readTags(deps, instanceId, region);
    return { identity: { instanceId, region, zone, role, environment, at: deps.now() }, source: "imds" };
  } catch (e) {
    const why = errorMessage(e);
    if (deps.cached) {
      const at = new Date(deps.cached.at).toISOString();
      return {
        identity: deps.cached, source: "cache",
        warning: `identity from the cache of ${at} (instance ${deps.cached.instanceId}): ${why}`,
      };
    }
    throw new AgentError("IdentityUnavailable",
      `cannot learn this node's identity and none is cached: ${why}`, { kind: "transient" }, { cause: e });
  }
}

/** Why this identity cannot be converged, for the status; null when it can. */
export function identityProblem(identity: CachedIdentity, tagNames: { role: string; environment: string }): { reason: string; message: string } | null {
  if (!identity.role) {
    return { reason: "NoRoleTag", message: `instance ${identity.instanceId} has no "${tagNames.role}" tag: tag it with its role (aws ec2 create-tags --resources ${identity.instanceId} --tags Key=${tagNames.role},Value=<role>)` };
  }
  if (!identity.environment) {
    return { reason: "NoEnvironmentTag", message: `instance ${identity.instanceId} has no "${tagNames.environment}" tag: tag it with its environment (aws ec2 create-tags --resources ${identity.instanceId} --tags Key=${tagNames.environment},Value=<environment>)` };
  }
  return null;
}

/** An identity read from IMDS is used again for this long before IMDS is asked again (the default poll). */
export const IDENTITY_REFRESH_MS = 30_000;

/**
 * `resolve`, asked again only when the last identity it read from IMDS is `refreshMs` old: a node
 * polling every 2 s does not start `agent _imds` every 2 s; a retagged instance is noticed within
 * max(poll, refreshMs). An answer from the cache (IMDS failed) is never kept: the next tick asks.
 */
export function refreshedIdentity(resolve: (cached: CachedIdentity | null) => Promise<ResolvedIdentity>, now: () => number, refreshMs = IDENTITY_REFRESH_MS) {
  let last: { r: ResolvedIdentity; at: number } | null = null;
  return async (cached: CachedIdentity | null): Promise<ResolvedIdentity> => {
    if (last && now() - last.at < refreshMs) return last.r;
    const r = await resolve(cached);
    last = r.source === "imds" ? { r, at: now() } : null;
    return r;
  };
}
