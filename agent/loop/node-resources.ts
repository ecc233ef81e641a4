// The volume and address resources of a tick, loaded on demand: converge/volume.ts (with
// plan/volume.ts and host/block.ts) and converge/address.ts are imported at a resource's first
// plan(), so a node whose role has neither never maps them (test/unit/daemon-imports.test.ts).
import type { CloudContext } from "../cloud/context.ts";
import type { Manifest, Role } from "../manifest/schema.ts";
import type { Identity, ResourcePort } from "./ports.ts";

/** A resource whose implementation is made at its first plan() or apply(). */
function lazy(ref: string, make: () => Promise<ResourcePort>): ResourcePort {
  let made: Promise<ResourcePort> | null = null;
  const get = () => made ??= make();
  return { ref, plan: async () => (await get()).plan(), apply: async (a) => (await get()).apply(a) };
}

/** The role's volumes, unbound ones first (each a problem condition), then the bound ones, each sorted by name. */
export function volumeResources(role: Role, manifest: Manifest, id: Identity, ctx: () => CloudContext): ResourcePort[] {
  const binding = manifest.roles[id.role ?? ""];
  const names = Object.keys(role.volumes).sort();
  if (!names.length) return [];
  const bound = (n: string) => !!binding?.volumes?.[n];
  return [...names.filter((n) => !bound(n)), ...names.filter(bound)].map((name) => lazy(`volume/${name}`, async () => {
    const m = await import("../converge/volume.ts");
    const { volumes, problems } = m.desiredVolumes(role, binding);
    const stuck = problems.find((c) => c.ref === `volume/${name}`);
    if (stuck) return { ref: stuck.ref, plan: async () => ({ actions: [], condition: stuck }), apply: async () => {} };
    return m.volumeResource(ctx(), volumes.find((v) => v.name === name)!) as ResourcePort;
  }));
}

/** The role's Elastic IP, or null when it has none. */
export function addressResource(role: Role, manifest: Manifest, id: Identity, ctx: () => CloudContext): ResourcePort | null {
  if (!role.address) return null;
  return lazy("address", async () => (await import("../converge/address.ts")).addressResource(ctx(), manifest.roles[id.role ?? ""]?.addresses ?? []) as ResourcePort);
}
