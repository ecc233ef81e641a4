// One EBS volume: observe (cheap local check first, EC2 only when needed), apply the planner's
// actions. Every action re-checks its own safety condition when it runs, so a plan made from an
// older observation never formats or mounts over something that appeared since.
import { AgentError, toAgentError } from "../core/errors.ts";
import { failed, observed, type Observed } from "../core/result.ts";
import {
  chownPath, deviceNumber, findMount, findVolumeDevice, isDirEmpty, makeFilesystem, mountDevice, ownerOf, probeDevice,
} from "../host/block.ts";
import { lookupUser } from "../host/users.ts";
import type { Role, RoleBinding } from "../manifest/schema.ts";
import { chooseVolume, planVolume, volumeRef, type VolumeAction, type VolumeCloud, type VolumeDesired, type VolumeObserved, type VolumePlan } from "../plan/volume.ts";
import type { ResourceStatus } from "../status/types.ts";
import { DEFAULT_ATTACH_DEADLINE_MS, DEFAULT_ATTACH_POLL_MS, DEFAULT_RECHECK_MS, type CloudContext } from "../cloud/context.ts";

/**
 * The role's volumes with their manifest bindings, sorted by name. The device name each is
 * attached as is chosen when it is attached (planVolume: the first one free on the instance),
 * never from its position here. A volume the manifest does not bind is a problem condition.
 */
export function desiredVolumes(role: Role, binding: RoleBinding | undefined): { volumes: VolumeDesired[]; problems: ResourceStatus[] } {
  const volumes: VolumeDesired[] = [], problems: ResourceStatus[] = [];
  Object.keys(role.volumes).sort().forEach((name) => {
    const b = binding?.volumes?.[name];
    if (!b) {
      problems.push({ ref: volumeRef(name), ready: false, reason: "VolumeUnbound", message: `the role has volume "${name}" but the manifest binds none: add roles.<role>.volumes.${name}: { id: vol-… } to the manifest` });
      return;
    }
    volumes.push({ name, volume: role.volumes[name]!, binding: b, owner: role.volumes[name]!.owner ?? role.user });
  });
  return { volumes, problems };
}

const knownId = (ctx: CloudContext, d: VolumeDesired) => ("id" in d.binding ? d.binding.id : ctx.memory.volumes.get(d.name)?.volumeId) ?? null;

function mountedFrom(device: string | null, mountDevNo: string): boolean {
  try { return !!device && deviceNumber(device) === mountDevNo; } catch { return false; }
}

/**
 * Observe one volume. Read-only. When the mount point is mounted from this volume's device and
 * EC2 confirmed it less than recheckMs ago (or this agent never asked), no EC2 call is made.
 */
export async function observeVolume(ctx: CloudContext, d: VolumeDesired): Promise<Observed<VolumeObserved>> {
  try {
    const mp = d.volume.mount;
    const now = ctx.clock.now();
    const mem = ctx.memory.volumes.get(d.name);
    const mount = findMount(mp);
    const wantOwner = await lookupUser(d.owner);
    const base = { instanceId: ctx.instanceId, zone: ctx.zone, wantOwner };
    let volumeId = knownId(ctx, d);
    let device = volumeId ? findVolumeDevice(ctx.byIdDir, volumeId, mem?.device) : null;
    if (mount && mountedFrom(device, mount.devNo) && (!mem || now - mem.checkedAt < (ctx.recheckMs ?? DEFAULT_RECHECK_MS))) {
      if (!mem) ctx.memory.volumes.set(d.name, { volumeId: volumeId!, device: null, checkedAt: now });
      return observed({ ...base, mount: { device: mount.device, fsType: mount.fsType, expected: true }, mountPointEmpty: true, cloud: null, devicesInUse: null, device, probe: null, owner: ownerOf(mp) });
    }
    const cloud = await describe(ctx, d);
    const pick = chooseVolume(cloud, ctx.instanceId, ctx.zone);
    device = null;
    let devicesInUse: string[] | null = null;
    if (pick.ok) {
      volumeId = pick.volume.volumeId;
      const ours = pick.volume.attachments.find((a) => a.instanceId === ctx.instanceId);
      device = ours ? findVolumeDevice(ctx.byIdDir, volumeId, ours.device) : null;
      ctx.memory.volumes.set(d.name, { volumeId, device: ours?.device ?? null, checkedAt: now });
      // An attach is due: which device names this instance already uses (one more call, only then).
      if (!ours) devicesInUse = await attachedDevices(ctx, d.name);
    }
    const expected = !!mount && mountedFrom(device, mount.devNo);
    return observed({
      ...base,
      mount: mount ? { device: mount.device, fsType: mount.fsType, expected } : null,
      mountPointEmpty: mount ? true : isDirEmpty(mp),
      cloud,
      devicesInUse,
      device,
      probe: device && !mount ? await probeDevice(device) : null,
      owner: mount ? ownerOf(mp) : null,
    });
  } catch (e) {
    return failed(toAgentError(e, "VolumeObserveFailed"));
  }
}

/**
 * Device names taken on this instance: every attachment EC2 lists for it (the root volume, volumes
 * the agent does not manage, ours), plus the names this agent asked for other volumes, which EC2
 * may not list yet. Read-only.
 */
async function attachedDevices(ctx: CloudContext, name: string): Promise<string[]> {
  const here = await ctx.ec2.describeVolumes({ attachedTo: ctx.instanceId });
  const listed = here.flatMap((v) => v.attachments.filter((a) => a.instanceId === ctx.instanceId && a.device).map((a) => a.device!));
  const asked = [...ctx.memory.volumes].filter(([n, m]) => n !== name && m.device).map(([, m]) => m.device!);
  return [...new Set([...listed, ...asked])].sort();
}

async function describe(ctx: CloudContext, d: VolumeDesired): Promise<VolumeCloud[]> {
  try {
    return await ctx.ec2.describeVolumes("id" in d.binding ? { ids: [d.binding.id] } : { tags: d.binding.tag });
  } catch (e) {
    if (e instanceof AgentError && e.reason === "VolumeNotFound") return []; // the planner says so
    throw e;
  }
}

/** Observe and plan; a failed observation is a blocked condition with no actions. Read-only. */
export async function planVolumeNow(ctx: CloudContext, d: VolumeDesired): Promise<VolumePlan> {
  const o = await observeVolume(ctx, d);
  if (!o.ok) return { actions: [], condition: { ref: volumeRef(d.name), ready: false, reason: o.error.reason, message: o.error.message } };
  return planVolume(d, o.value);
}

function localDevice(ctx: CloudContext, a: VolumeAction): string {
  const dev = findVolumeDevice(ctx.byIdDir, a.volumeId, ctx.memory.volumes.get(a.ref.slice("volume/".length))?.device);
  if (!dev) throw new AgentError("DeviceMissing", `${a.volumeId} has no local device under ${ctx.byIdDir}; the next tick looks again`);
  return dev;
}

/**
 * Run one action. Idempotent: an action whose effect is already there does nothing. Throws
 * AgentError: "Attaching" (transient) when the attach deadline passes; safety refusals are terminal.
 */
export async function applyVolume(ctx: CloudContext, a: VolumeAction): Promise<void> {
  const log = ctx.log.child("volume");
  switch (a.kind) {
    case "volume.attach": {
      log.info("attaching", { volume: a.volumeId, device: a.device });
      const r = await ctx.ec2.attachVolume(a.volumeId, ctx.instanceId, a.device);
      const name = a.ref.slice("volume/".length);
      ctx.memory.volumes.set(name, { volumeId: a.volumeId, device: a.device, checkedAt: ctx.clock.now() });
      log.debug("attach requested", { volume: a.volumeId, state: r.state });
      return;
    }
    case "volume.wait": {
      const deadline = ctx.clock.now() + (ctx.attachDeadlineMs ?? DEFAULT_ATTACH_DEADLINE_MS);
      const name = a.ref.slice("volume/".length);
      for (;;) {
        const [v] = await ctx.ec2.describeVolumes({ ids: [a.volumeId] });
        const ours = v?.attachments.find((x) => x.instanceId === ctx.instanceId);
        if (!ours) throw new AgentError("NotAttached", `${a.volumeId} is not attached to ${ctx.instanceId} (any more); the next tick attaches it`);
        if (ours.state === "attached" && findVolumeDevice(ctx.byIdDir, a.volumeId, ours.device)) {
          ctx.memory.volumes.set(name, { volumeId: a.volumeId, device: ours.device, checkedAt: ctx.clock.now() });
          log.info("attached", { volume: a.volumeId });
          return;
        }
        if (ctx.clock.now() >= deadline) {
          throw new AgentError("Attaching", `${a.volumeId} is still ${ours.state === "attached" ? "without its device" : ours.state}; the next tick keeps waiting`);
        }
        await ctx.clock.sleep(Math.min(ctx.attachPollMs ?? DEFAULT_ATTACH_POLL_MS, Math.max(1, deadline - ctx.clock.now())));
      }
    }
    case "volume.format": {
      const dev = localDevice(ctx, a);
      const probe = await probeDevice(dev);
      if (probe.fsType === a.fs) return; // already formatted: nothing to do
      // SAFETY: never format a device that has any filesystem, RAID, LVM or partition signature.
      // makeFilesystem probes once more right before mkfs and refuses too.
      if (!probe.blank) {
        throw AgentError.terminal(probe.fsType ? "FilesystemMismatch" : "DeviceNotBlank",
          `${dev} (${a.volumeId}) has ${probe.signatures.join(", ")}, not ${a.fs}; it is never formatted: change the role's fs, or clear the device yourself if its data is unwanted`);
      }
      log.info("formatting", { volume: a.volumeId, device: dev, fs: a.fs });
      await makeFilesystem(dev, a.fs);
      return;
    }
    case "volume.mount": {
      const dev = localDevice(ctx, a);
      const m = findMount(a.mount);
      if (m && mountedFrom(dev, m.devNo)) return;
      if (m) throw AgentError.terminal("MountPointBusy", `${a.mount} is mounted from ${m.device}; unmount it first`);
      if (!isDirEmpty(a.mount)) throw AgentError.terminal("MountPointNotEmpty", `${a.mount} has files in it; move them away so the volume is not mounted over them`);
      const probe = await probeDevice(dev);
      if (probe.fsType !== a.fs) {
        throw AgentError.terminal(probe.blank ? "Blank" : "FilesystemMismatch", `${dev} (${a.volumeId}) has ${probe.blank ? "no filesystem" : probe.signatures.join(", ")}, not ${a.fs}; it is not mounted`);
      }
      log.info("mounting", { volume: a.volumeId, device: dev, mount: a.mount });
      await mountDevice(dev, a.mount, a.fs, a.options);
      return;
    }
    case "volume.chown": {
      const want = await lookupUser(a.owner);
      if (!want) throw new AgentError("OwnerUnknown", `user ${a.owner} does not exist (yet) to own ${a.mount}; it is created with the role's packages and user`);
      const have = ownerOf(a.mount);
      if (have && have.uid === want.uid && have.gid === want.gid) return;
      log.info("chown", { mount: a.mount, owner: a.owner });
      chownPath(a.mount, want);
      return;
    }
  }
}

/** A node-level resource as the loop drives it: plan() observes and plans, apply() runs one action. */
export function volumeResource(ctx: CloudContext, d: VolumeDesired) {
  return {
    ref: volumeRef(d.name),
    plan: () => planVolumeNow(ctx, d),
    apply: (a: { kind: string }) => applyVolume(ctx, a as VolumeAction),
  };
}

/** plan, apply every action, plan again: the condition after one pass. Never throws. */
export async function convergeVolume(ctx: CloudContext, d: VolumeDesired): Promise<{ planned: VolumeAction[]; condition: ResourceStatus }> {
  const first = await planVolumeNow(ctx, d);
  try {
    for (const a of first.actions) await applyVolume(ctx, a);
  } catch (e) {
    const err = toAgentError(e);
    return { planned: first.actions, condition: { ref: volumeRef(d.name), ready: false, reason: err.reason, message: err.message } };
  }
  return { planned: first.actions, condition: first.actions.length ? (await planVolumeNow(ctx, d)).condition : first.condition };
}
