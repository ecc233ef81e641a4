// Loop device helpers for tests and the EC2 stand-in: sparse backing files, losetup attach and
// detach, the NVMe by-id link name that EBS volumes get. Attaching needs root; callers check
// isRoot() first and skip with a message otherwise. Never touches a device it did not set up.
import { closeSync, openSync, ftruncateSync, readFileSync } from "node:fs";
import { exec } from "../../agent/host/exec.ts";

export { isRoot } from "../../agent/host/users.ts";

/** The by-id link name a real NVMe EBS volume has: vol-0abc -> nvme-Amazon_Elastic_Block_Store_vol0abc. */
export function byIdLinkName(volumeId: string): string {
  return `nvme-Amazon_Elastic_Block_Store_${volumeId.replace("-", "")}`;
}

/** Creates (or resizes) a sparse file of sizeMiB; no blocks are allocated until written. */
export function createSparseFile(path: string, sizeMiB: number): void {
  const fd = openSync(path, "a");
  try {
    ftruncateSync(fd, sizeMiB * 1024 * 1024);
  } finally {
    closeSync(fd);
  }
}

// losetup --find races with itself when two callers pick the same free device; serialise ours.
let queue: Promise<unknown> = Promise.resolve();
function serially<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

async function run(argv: string[]): Promise<string> {
  const r = await exec(argv, { timeoutMs: 30_000 });
  if (r.code !== 0) {
    throw new Error(`${argv.join(" ")} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}; are you root, and is /dev/loop-control there?`);
  }
  return r.stdout.trim();
}

/** Sets up a loop device over file (root only) and returns its path, e.g. /dev/loop3. */
export function attachLoop(file: string): Promise<string> {
  return serially(() => run(["losetup", "--find", "--show", file]));
}

/** Unmounts whatever is mounted from dev, then detaches it. Idempotent: a gone device is fine. */
export async function detachLoop(dev: string): Promise<void> {
  for (const target of mountsOf(dev).reverse()) {
    const r = await exec(["umount", target], { timeoutMs: 30_000 });
    if (r.code !== 0) await exec(["umount", "-l", target], { timeoutMs: 30_000 });
  }
  await serially(async () => {
    const r = await exec(["losetup", "-d", dev], { timeoutMs: 30_000 });
    if (r.code !== 0 && !/No such device|not a loop|No such file/i.test(r.stderr)) {
      throw new Error(`losetup -d ${dev} failed: ${r.stderr.trim()}`);
    }
  });
}

/** The loop devices currently backed by file (losetup -j), e.g. ["/dev/loop3"]. */
export async function loopDevicesFor(file: string): Promise<string[]> {
  const r = await exec(["losetup", "-j", file], { timeoutMs: 30_000 });
  if (r.code !== 0) return [];
  return r.stdout.split("\n").filter(Boolean).map((l) => l.slice(0, l.indexOf(":")));
}

/** The size of a block device in bytes (blockdev --getsize64). */
export async function blockDeviceSize(dev: string): Promise<number> {
  return Number(await run(["blockdev", "--getsize64", dev]));
}

/** Mount points whose source is dev, in mount order (from /proc/self/mounts). */
export function mountsOf(dev: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const [source, target] = line.split(" ");
    if (source === dev && target) out.push(target.replace(/\\040/g, " "));
  }
  return out;
}

/** A loop device over a fresh sparse file: for volume tests that need a bare block device. */
export async function createLoopDevice(file: string, sizeMiB: number): Promise<{ file: string; device: string; detach(): Promise<void> }> {
  createSparseFile(file, sizeMiB);
  const device = await attachLoop(file);
  return { file, device, detach: () => detachLoop(device) };
}
