// Block devices and mounts: find an EBS volume's device, probe it for signatures, mkfs, mount,
// and read what is mounted where. Nothing here decides; converge/volume.ts does. No fstab: a
// restart (or a reboot) mounts again through the same observe -> mount path.
import { existsSync, readdirSync, readFileSync, realpathSync, statSync, chownSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { AgentError } from "../core/errors.ts";
import { exec } from "./exec.ts";

/** "vol-0abc" -> the name of its NVMe by-id link, "nvme-Amazon_Elastic_Block_Store_vol0abc". */
export function ebsLinkName(volumeId: string): string {
  return `nvme-Amazon_Elastic_Block_Store_${volumeId.replace("-", "")}`;
}

/**
 * The local block device of an attached volume, or null when none is there (yet).
 * NVMe (Nitro): the by-id link naming the volume id. Xen: the requested device name, which the
 * kernel shows as /dev/xvdX for /dev/sdX. Read-only.
 */
export function findVolumeDevice(byIdDir: string, volumeId: string, requestedDevice?: string | null): string | null {
  const link = join(byIdDir, ebsLinkName(volumeId));
  if (existsSync(link)) {
    const dev = realpathSync(link);
    if (isBlockDevice(dev)) return dev;
  }
  if (requestedDevice) {
    const xen = requestedDevice.replace(/^\/dev\/sd/, "/dev/xvd");
    if (xen.startsWith("/dev/xvd") && isBlockDevice(xen)) return xen;
  }
  return null;
}

function isBlockDevice(path: string): boolean {
  try { return statSync(path).isBlockDevice(); } catch { return false; }
}

/** "major:minor" of a block device, as /proc/self/mountinfo writes it. */
export function deviceNumber(device: string): string {
  const rdev = statSync(device).rdev;
  // Linux encodes dev_t as major in bits 8-19 (+ 32-43), minor in bits 0-7 (+ 12-31 of the high part).
  const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  return `${major}:${minor}`;
}

export interface MountEntry { device: string; devNo: string; mountPoint: string; fsType: string; options: string }

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** Every mount of this process's namespace, from /proc/self/mountinfo. Read-only. */
export function readMounts(mountinfo = "/proc/self/mountinfo"): MountEntry[] {
  return readFileSync(mountinfo, "utf8").split("\n").filter(Boolean).map((line) => {
    const [left, right = ""] = line.split(" - ");
    const f = left!.split(" ");
    const r = right.split(" ");
    return { devNo: f[2]!, mountPoint: unescape(f[4]!), options: f[5] ?? "", fsType: r[0] ?? "", device: unescape(r[1] ?? "") };
  });
}

/** The mount at exactly this path (the last one wins, as the kernel shows it), or null. */
export function findMount(mountPoint: string, mounts = readMounts()): MountEntry | null {
  const want = mountPoint.replace(/\/+$/, "") || "/";
  return mounts.filter((m) => m.mountPoint === want).at(-1) ?? null;
}

export interface Probe {
  /** True only when neither blkid nor wipefs finds any signature at all. */
  blank: boolean;
  /** The filesystem type when there is one ("ext4"), else null. */
  fsType: string | null;
  /** Every signature found, as "TYPE" or "PTTYPE=gpt" and wipefs's types: for messages. */
  signatures: string[];
}

/**
 * Look for any filesystem, RAID, LVM or partition-table signature on a device. Read-only.
 * Throws AgentError "DeviceProbeFailed" when it cannot tell: a device we cannot read is never blank.
 */
export async function probeDevice(device: string): Promise<Probe> {
  const b = await exec(["blkid", "-p", "-o", "export", device], { timeoutMs: 30_000 });
  // blkid exits 2 when it found nothing; anything else but 0 means it could not tell.
  if (b.code !== 0 && b.code !== 2) {
    throw new AgentError("DeviceProbeFailed", `blkid -p ${device} failed (exit ${b.code}): ${b.stderr.trim()}; check the device and retry`);
  }
  const kv = Object.fromEntries(b.stdout.split("\n").filter((l) => l.includes("=")).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  const w = await exec(["wipefs", "--no-act", "--noheadings", "--output", "TYPE", device], { timeoutMs: 30_000 });
  if (w.code !== 0) {
    throw new AgentError("DeviceProbeFailed", `wipefs -n ${device} failed (exit ${w.code}): ${w.stderr.trim()}; check the device and retry`);
  }
  const signatures = [
    ...(kv.TYPE ? [kv.TYPE] : []),
    ...(kv.PTTYPE ? [`PTTYPE=${kv.PTTYPE}`] : []),
    ...w.stdout.split("\n").map((s) => s.trim()).filter(Boolean).map((t) => `wipefs:${t}`),
  ];
  return { blank: signatures.length === 0 && b.code === 2, fsType: kv.TYPE ?? null, signatures };
}

/**
 * Make a filesystem. SAFETY: probes the device again right before mkfs and refuses
 * (AgentError "DeviceNotBlank", terminal) when any signature is there: never format a device
 * that has a filesystem or partition signature. mkfs runs without -F so it refuses too.
 */
export async function makeFilesystem(device: string, fs: "ext4" | "xfs"): Promise<void> {
  const probe = await probeDevice(device);
  if (!probe.blank) {
    throw AgentError.terminal("DeviceNotBlank", `refusing to format ${device}: it has ${probe.signatures.join(", ")}; wipe it yourself if its data is really unwanted`);
  }
  const argv = fs === "xfs" ? ["mkfs.xfs", "-q", device] : ["mkfs.ext4", "-q", device];
  const r = await exec(argv, { timeoutMs: 10 * 60_000 });
  if (r.code !== 0) throw new AgentError("FormatFailed", `${argv.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
}

/** Mount read-write with the given options; creates the mount point. Not idempotent: check findMount first. */
export async function mountDevice(device: string, mountPoint: string, fs: string, options: string[]): Promise<void> {
  mkdirSync(mountPoint, { recursive: true });
  const argv = ["mount", "-t", fs, ...(options.length ? ["-o", options.join(",")] : []), device, mountPoint];
  const r = await exec(argv, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new AgentError("MountFailed", `${argv.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}; check the options and the kernel log (dmesg)`);
}

/** Unmount (for tests and operators' tools; the agent never unmounts on its own). */
export async function unmount(mountPoint: string): Promise<void> {
  const r = await exec(["umount", mountPoint], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new AgentError("UnmountFailed", `umount ${mountPoint} failed: ${r.stderr.trim()}`);
}

/** True when the directory is missing or has no entries. */
export function isDirEmpty(path: string): boolean {
  try { return readdirSync(path).length === 0; } catch (e) { if ((e as NodeJS.ErrnoException).code === "ENOENT") return true; throw e; }
}

export interface Owner { uid: number; gid: number }

/** Owner of a path, or null when it does not exist. */
export function ownerOf(path: string): Owner | null {
  try { const s = statSync(path); return { uid: s.uid, gid: s.gid }; } catch { return null; }
}

/** chown of one path (not recursive: only the filesystem's root directory). */
export function chownPath(path: string, owner: Owner): void {
  chownSync(path, owner.uid, owner.gid);
}
