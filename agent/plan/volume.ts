// The volume planner: (desired, observed) -> the actions that bring one EBS volume to "attached
// to this instance, formatted if blank, mounted, owned by the role's user". Pure: plain data in,
// plain data out. Safety decisions are made here AND re-checked when an action runs.
import type { Volume } from "../manifest/schema.ts";
import type { ResourceStatus } from "../status/types.ts";
import type { ActionBase } from "./types.ts";

export type VolumeBinding = { id: string } | { tag: Record<string, string> };

export interface VolumeDesired {
  name: string;
  volume: Volume;
  binding: VolumeBinding;
  /** Who owns the filesystem's root directory: the volume's `owner:`, else the role's user. */
  owner: string;
}

export interface VolumeCloud {
  volumeId: string;
  zone: string;
  state: string;
  attachments: { instanceId: string; device: string | null; state: string }[];
}

export interface VolumeObserved {
  instanceId: string;
  zone: string;
  /** What is mounted at the mount point; expected = from this volume's device. */
  mount: { device: string; fsType: string; expected: boolean } | null;
  /** The mount point directory is missing or empty (only meaningful when nothing is mounted). */
  mountPointEmpty: boolean;
  /** Volumes EC2 returned for the binding; null when EC2 was not asked (mounted, recently confirmed). */
  cloud: VolumeCloud[] | null;
  /**
   * Device names already taken on this instance (every attachment EC2 lists for it, and names
   * this agent just asked for); null when not asked, which is only when no attach is due.
   */
  devicesInUse: string[] | null;
  /** The local block device of the chosen volume, when one is there. */
  device: string | null;
  /** Signatures on that device (null: not probed). */
  probe: { blank: boolean; fsType: string | null; signatures: string[] } | null;
  /** Owner of the mounted filesystem's root, and the owner wanted (null: the user does not exist). */
  owner: { uid: number; gid: number } | null;
  wantOwner: { uid: number; gid: number } | null;
}

type Base = ActionBase & { volumeId: string };
export type VolumeAction =
  | (Base & { kind: "volume.attach"; device: string })
  | (Base & { kind: "volume.wait" })
  | (Base & { kind: "volume.format"; fs: "ext4" | "xfs" })
  | (Base & { kind: "volume.mount"; mount: string; fs: "ext4" | "xfs"; options: string[] })
  | (Base & { kind: "volume.chown"; mount: string; owner: string });

export interface VolumePlan { actions: VolumeAction[]; condition: ResourceStatus }

export const volumeRef = (name: string) => `volume/${name}`;

const bindingText = (b: VolumeBinding) =>
  "id" in b ? b.id : `tagged ${Object.entries(b.tag).map(([k, v]) => `${k}=${v}`).join(",")}`;

/**
 * Which of the volumes EC2 returned is ours to use: one attached to us, else one in our zone
 * with no attachment (lowest id first, so the choice is stable). Otherwise why not.
 */
export function chooseVolume(cloud: VolumeCloud[], instanceId: string, zone: string):
  { ok: true; volume: VolumeCloud } | { ok: false; reason: string; message: string } {
  const sorted = [...cloud].sort((a, b) => a.volumeId.localeCompare(b.volumeId));
  const mine = sorted.find((v) => v.attachments.some((a) => a.instanceId === instanceId));
  if (mine) return { ok: true, volume: mine };
  if (sorted.length === 0) return { ok: false, reason: "VolumeNotFound", message: "no such volume in this region" };
  const free = sorted.filter((v) => v.attachments.length === 0);
  const here = free.find((v) => v.zone === zone && v.state === "available") ?? free.find((v) => v.zone === zone);
  if (here) return { ok: true, volume: here };
  if (free.length > 0) {
    return { ok: false, reason: "WrongZone", message: `${free[0]!.volumeId} is in ${free[0]!.zone} but this instance is in ${zone}; an EBS volume attaches only in its own zone` };
  }
  const held = sorted[0]!.attachments[0]!;
  return { ok: false, reason: "HeldByOtherInstance", message: `${sorted[0]!.volumeId} is attached to ${held.instanceId}; it is never taken from another instance: detach it there first` };
}

/** The names the agent asks for at attach, in order: AWS's recommended range for EBS data volumes. */
export const DEVICE_NAMES = [..."fghijklmnop"].map((l) => `/dev/sd${l}`);

/** "/dev/sdf", "/dev/xvdf", "xvdf1" -> "f": Xen shows /dev/sdX as /dev/xvdX, so both hold the letter. */
const slot = (device: string) => /^(?:\/dev\/)?(?:sd|xvd)([a-z]+)\d*$/.exec(device)?.[1] ?? device;

/**
 * The first of DEVICE_NAMES that no name in `inUse` holds, or null when all are taken. Never a
 * name another attachment of this instance uses: EC2 refuses that attach, on every retry.
 */
export function freeDevice(inUse: readonly string[]): string | null {
  const taken = new Set(inUse.map(slot));
  return DEVICE_NAMES.find((d) => !taken.has(slot(d))) ?? null;
}

/** Plan one volume. Pure and total: every observation gives actions or a reason why none. */
export function planVolume(d: VolumeDesired, o: VolumeObserved): VolumePlan {
  const ref = volumeRef(d.name);
  const mp = d.volume.mount;
  const cond = (ready: boolean, reason: string, message: string): ResourceStatus => ({ ref, ready, reason, message });
  const none = (reason: string, message: string): VolumePlan => ({ actions: [], condition: cond(false, reason, message) });

  if (o.mount && !o.mount.expected) {
    return none("MountPointBusy", `${mp} is mounted from ${o.mount.device}, not from ${bindingText(d.binding)}; unmount it, or change the role's mount point`);
  }
  if (o.mount) {
    if (!o.wantOwner) return none("OwnerUnknown", `${mp} is mounted, but user ${d.owner} does not exist (yet) to own it`);
    if (o.owner && (o.owner.uid !== o.wantOwner.uid || o.owner.gid !== o.wantOwner.gid)) {
      const volumeId = "id" in d.binding ? d.binding.id : "";
      return {
        actions: [{ kind: "volume.chown", ref, volumeId, mount: mp, owner: d.owner, description: `make ${mp} owned by ${d.owner}` }],
        condition: cond(false, "WrongOwner", `${mp} is owned by uid ${o.owner.uid}, not by ${d.owner}`),
      };
    }
    return { actions: [], condition: cond(true, "Mounted", `${mp} (${o.mount.fsType}) from ${o.mount.device}`) };
  }
  if (!o.mountPointEmpty) {
    return none("MountPointNotEmpty", `${mp} is not mounted but has files in it; move them away (the volume is not mounted over them)`);
  }
  if (!o.cloud) return none("ObservationIncomplete", `${mp} is not mounted and EC2 was not asked; the next tick asks`);
  const pick = chooseVolume(o.cloud, o.instanceId, o.zone);
  if (!pick.ok) return none(pick.reason, `${bindingText(d.binding)}: ${pick.message}`);
  const v = pick.volume;
  const base = { ref, volumeId: v.volumeId };
  const tail: VolumeAction[] = [
    ...(d.volume.format === "if-blank"
      ? [{ ...base, kind: "volume.format" as const, fs: d.volume.fs, description: `format ${v.volumeId} as ${d.volume.fs} if it has no signature at all` }]
      : []),
    { ...base, kind: "volume.mount", mount: mp, fs: d.volume.fs, options: d.volume.options, description: `mount ${v.volumeId} on ${mp} (${d.volume.options.join(",")})` },
    { ...base, kind: "volume.chown", mount: mp, owner: d.owner, description: `make ${mp} owned by ${d.owner} (when it is not)` },
  ];
  const ours = v.attachments.find((a) => a.instanceId === o.instanceId);
  if (!ours) {
    if (v.state !== "available") return none("VolumeNotAvailable", `${v.volumeId} is ${v.state}; waiting for it to become available`);
    if (!o.devicesInUse) return none("ObservationIncomplete", `${v.volumeId} is not attached and this instance's attachments were not listed; the next tick lists them`);
    const device = freeDevice(o.devicesInUse);
    if (!device) {
      return none("NoFreeDevice", `${v.volumeId} cannot be attached: ${DEVICE_NAMES[0]} to ${DEVICE_NAMES.at(-1)} are all taken on this instance (${o.devicesInUse.join(", ")}); detach a volume this instance no longer needs`);
    }
    return {
      actions: [
        { ...base, kind: "volume.attach", device, description: `attach ${v.volumeId} to ${o.instanceId} as ${device}` },
        { ...base, kind: "volume.wait", description: `wait for ${v.volumeId} to be attached and its device to appear` },
        ...tail,
      ],
      condition: cond(false, "NotAttached", `${v.volumeId} is not attached to this instance`),
    };
  }
  if (ours.state === "detaching" || ours.state === "detached") {
    return none("Detaching", `${v.volumeId} is ${ours.state} from this instance; it is attached again once it is available`);
  }
  if (ours.state !== "attached" || !o.device) {
    return {
      actions: [{ ...base, kind: "volume.wait", description: `wait for ${v.volumeId} to be attached and its device to appear` }, ...tail],
      condition: cond(false, "Attaching", `${v.volumeId} is ${ours.state}${ours.state === "attached" ? " but its device has not appeared yet" : ""}`),
    };
  }
  const p = o.probe;
  if (!p) return { actions: tail, condition: cond(false, "NotMounted", `${v.volumeId} is attached as ${o.device}`) };
  if (p.blank) {
    if (d.volume.format !== "if-blank") return none("Blank", `${o.device} (${v.volumeId}) has no filesystem and the role says format: never; make one yourself`);
    return { actions: tail, condition: cond(false, "NotFormatted", `${o.device} (${v.volumeId}) is blank; it gets ${d.volume.fs}`) };
  }
  if (p.fsType !== d.volume.fs) {
    // SAFETY: a device with any signature other than the wanted filesystem is never formatted or mounted.
    return none(p.fsType ? "FilesystemMismatch" : "DeviceNotBlank",
      `${o.device} (${v.volumeId}) has ${p.signatures.join(", ")}, not ${d.volume.fs}; it is left alone: change the role's fs or clear the device yourself`);
  }
  return { actions: tail.filter((a) => a.kind !== "volume.format"), condition: cond(false, "NotMounted", `${v.volumeId} has ${p.fsType} and is not mounted on ${mp}`) };
}
