// EBS volumes end to end as root: the real EC2 client against the stand-in, whose AttachVolume
// sets up a loop device and the NVMe by-id link; real blkid, mkfs, mount and chown.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCloudMemory, type CloudContext } from "../../agent/cloud/context.ts";
import { createEc2, type Ec2 } from "../../agent/cloud/ec2.ts";
import { applyVolume, convergeVolume, desiredVolumes, planVolumeNow } from "../../agent/converge/volume.ts";
import { parseRole } from "../../agent/manifest/parse.ts";
import { systemClock } from "../../agent/core/clock.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { exec } from "../../agent/host/exec.ts";
import { findMount, unmount } from "../../agent/host/block.ts";
import { lookupUser } from "../../agent/host/users.ts";
import type { VolumeDesired } from "../../agent/plan/volume.ts";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { attachLoop, detachLoop, isRoot } from "../servers/loop.ts";

const ME = "i-0aaaaaaaaaaaaaaa1", OTHER = "i-0bbbbbbbbbbbbbbb2", ZONE = "us-east-1a";
const root = isRoot();
if (!root) console.log("volume tests skipped: they need root for loop devices, mkfs and mount");

let dir: string, byIdDir: string, ec2s: Ec2Server, ec2: Ec2;
const mounts: string[] = [];

beforeAll(async () => {
  if (!root) return;
  dir = mkdtempSync(join(tmpdir(), "agent-volume-"));
  byIdDir = join(dir, "by-id");
  ec2s = await startEc2({ dataDir: join(dir, "ebs"), byIdDir });
  ec2s.addInstance({ id: ME, zone: ZONE, tags: {} });
  ec2s.addInstance({ id: OTHER, zone: ZONE, tags: {} });
  ec2 = createEc2({ region: "us-east-1", endpoint: ec2s.url, credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "x" }, maxAttempts: 2 });
});
afterAll(async () => {
  if (!root) return;
  for (const m of mounts) if (findMount(m)) await unmount(m).catch(() => {});
  await ec2s.stop(); // unmounts anything left on its loop devices, detaches them, removes the links
  rmSync(dir, { recursive: true, force: true });
});

const ctx = (over: Partial<CloudContext> = {}): CloudContext => ({
  ec2, instanceId: ME, zone: ZONE, byIdDir, log: memoryLogger(), clock: systemClock, memory: createCloudMemory(),
  attachPollMs: 50, attachDeadlineMs: 10_000, ...over,
});
let n = 0;
function volume(opts: { zone?: string; tags?: Record<string, string>; fs?: "ext4" | "xfs"; format?: "if-blank" | "never"; binding?: "id" | "tag" } = {}): VolumeDesired & { id: string } {
  const id = `vol-0${(++n).toString(16).padStart(16, "0")}`;
  ec2s.addVolume({ id, zone: opts.zone ?? ZONE, sizeMiB: 64, tags: opts.tags ?? { Name: `data-${n}` } });
  const mount = join(dir, `mnt-${n}`);
  mounts.push(mount);
  return {
    id, name: `data${n}`, owner: "nobody",
    binding: opts.binding === "tag" ? { tag: opts.tags ?? { Name: `data-${n}` } } : { id },
    volume: { mount, fs: opts.fs ?? "ext4", format: opts.format ?? "if-blank", options: ["defaults", "nofail"] },
  };
}
const calls = (action: string, from = 0) => ec2s.calls.slice(from).filter((c) => c.action === action && c.status === 200);
const rt = root ? test : test.skip;

describe("volume converge", () => {
  rt("blank volume: attached, formatted, mounted, owned by the user; the second pass plans nothing and calls EC2 not at all", async () => {
    const v = volume();
    const c = ctx();
    const r = await convergeVolume(c, v);
    expect(r.planned.map((a) => a.kind)).toEqual(["volume.attach", "volume.wait", "volume.format", "volume.mount", "volume.chown"]);
    expect(r.condition).toMatchObject({ ref: `volume/${v.name}`, ready: true, reason: "Mounted" });
    expect(findMount(v.volume.mount)).toMatchObject({ fsType: "ext4" });
    expect(statSync(v.volume.mount).uid).toBe((await lookupUser("nobody"))!.uid);
    writeFileSync(join(v.volume.mount, "kept.txt"), "hello");
    const before = ec2s.calls.length;
    const again = await convergeVolume(c, v);
    expect(again.planned).toEqual([]);
    expect(again.condition.ready).toBe(true);
    expect(ec2s.calls.length).toBe(before);

    // agent restart / reboot: unmounted, memory gone -> mounted again, same data, no attach, no format
    await unmount(v.volume.mount);
    const fresh = await convergeVolume(ctx(), v);
    expect(fresh.planned.map((a) => a.kind)).toEqual(["volume.mount", "volume.chown"]);
    expect(fresh.condition.reason).toBe("Mounted");
    expect(readFileSync(join(v.volume.mount, "kept.txt"), "utf8")).toBe("hello");
    expect(calls("AttachVolume").filter((x) => x.params.VolumeId === v.id)).toHaveLength(1);
  });

  rt("a volume added whose name sorts first is attached as a device name no attachment holds, not the one an attached volume has", async () => {
    const logs = `vol-0${(++n).toString(16).padStart(16, "0")}`, archive = `vol-0${(++n).toString(16).padStart(16, "0")}`;
    for (const id of [logs, archive]) ec2s.addVolume({ id, zone: ZONE, sizeMiB: 64, tags: {} });
    const mnt = (name: string) => { const m = join(dir, `mnt-${name}-${n}`); mounts.push(m); return m; };
    const logsMount = mnt("logs"), archiveMount = mnt("archive");
    const c = ctx({ instanceId: "i-0ccccccccccccccc3" });   // its own instance: earlier tests attach to ME
    ec2s.addInstance({ id: c.instanceId, zone: ZONE, tags: {} });
    const roleWith = (names: string[]) => {
      const r = parseRole(`volumes:\n${names.map((v) => `  ${v}: { mount: ${v === "logs" ? logsMount : archiveMount}, owner: nobody }\n`).join("")}`, "roles/db.yaml");
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      return r.value;
    };
    const binding = { volumes: { logs: { id: logs }, archive: { id: archive } } };

    // The role has one volume: it takes the first name.
    const first = desiredVolumes(roleWith(["logs"]), binding).volumes;
    expect((await convergeVolume(c, first[0]!)).condition.reason).toBe("Mounted");
    expect(ec2s.volumes.get(logs)!.attachment!.device).toBe("/dev/sdf");

    // A release adds "archive", which sorts before "logs": it must not ask for /dev/sdf.
    const from = ec2s.calls.length;
    const both = desiredVolumes(roleWith(["logs", "archive"]), binding).volumes;
    expect(both.map((v) => v.name)).toEqual(["archive", "logs"]);
    for (const v of both) expect((await convergeVolume(c, v)).condition).toMatchObject({ ready: true, reason: "Mounted" });
    expect(ec2s.volumes.get(archive)!.attachment!.device).toBe("/dev/sdg");
    expect(ec2s.volumes.get(logs)!.attachment!.device).toBe("/dev/sdf");
    expect(ec2s.calls.slice(from).filter((x) => x.action === "AttachVolume").map((x) => [x.params.VolumeId, x.params.Device, x.status]))
      .toEqual([[archive, "/dev/sdg", 200]]);
    expect(findMount(archiveMount)).toMatchObject({ fsType: "ext4" });
    expect(findMount(logsMount)).toMatchObject({ fsType: "ext4" });
  });

  rt("a slow attach: Attaching when the deadline passes, converged on the next pass without a second attach", async () => {
    const v = volume();
    ec2s.faults.attachDelayMs = 1500;
    try {
      const c = ctx({ attachDeadlineMs: 200 });
      const first = await convergeVolume(c, v);
      expect(first.condition).toMatchObject({ ready: false, reason: "Attaching" });
      const second = await convergeVolume({ ...c, attachDeadlineMs: 10_000 }, v);
      expect(second.planned[0]!.kind).toBe("volume.wait");
      expect(second.condition.reason).toBe("Mounted");
      expect(calls("AttachVolume").filter((x) => x.params.VolumeId === v.id)).toHaveLength(1);
    } finally { ec2s.faults.attachDelayMs = 0; }
  });

  rt("killed between attach and mount: a fresh agent finishes without attaching again (tag binding)", async () => {
    const v = volume({ binding: "tag", tags: { Name: "db-data-kill" } });
    const p = await planVolumeNow(ctx(), v);
    for (const a of p.actions.slice(0, 2)) await applyVolume(ctx(), a); // attach + wait, then "killed"
    expect(findMount(v.volume.mount)).toBeNull();
    const from = ec2s.calls.length;
    const r = await convergeVolume(ctx(), v);
    expect(r.planned.map((a) => a.kind)).toEqual(["volume.format", "volume.mount", "volume.chown"]);
    expect(r.condition.reason).toBe("Mounted");
    expect(calls("AttachVolume", from)).toEqual([]);
  });

  rt("a volume in another zone: WrongZone, never attached", async () => {
    const v = volume({ zone: "us-east-1b" });
    const from = ec2s.calls.length;
    const r = await convergeVolume(ctx(), v);
    expect(r.condition).toMatchObject({ ready: false, reason: "WrongZone" });
    expect(calls("AttachVolume", from)).toEqual([]);
  });

  rt("held by another instance: HeldByOtherInstance naming it, never taken", async () => {
    const v = volume();
    await ec2.attachVolume(v.id, OTHER, "/dev/sdz");
    const from = ec2s.calls.length;
    const r = await convergeVolume(ctx(), v);
    expect(r.condition).toMatchObject({ ready: false, reason: "HeldByOtherInstance" });
    expect(r.condition.message).toContain(OTHER);
    expect(calls("AttachVolume", from)).toEqual([]);
    expect(ec2s.volumes.get(v.id)!.attachment!.instanceId).toBe(OTHER);
  });

  rt("a non-empty mount point: MountPointNotEmpty, nothing done", async () => {
    const v = volume();
    mkdirSync(v.volume.mount, { recursive: true });
    writeFileSync(join(v.volume.mount, "precious"), "x");
    const from = ec2s.calls.length;
    const r = await convergeVolume(ctx(), v);
    expect(r).toMatchObject({ planned: [], condition: { ready: false, reason: "MountPointNotEmpty" } });
    expect(calls("AttachVolume", from)).toEqual([]);
    expect(findMount(v.volume.mount)).toBeNull();
    expect(readFileSync(join(v.volume.mount, "precious"), "utf8")).toBe("x");
  });

  /** Put an ext4 filesystem with a file on a volume's backing file; returns its UUID and the file's hash. */
  async function withData(id: string): Promise<{ uuid: string; sum: string }> {
    const loop = await attachLoop(ec2s.backingFile(id));
    const m = join(dir, `seed-${id}`);
    try {
      expect((await exec(["mkfs.ext4", "-q", loop])).code).toBe(0);
      mkdirSync(m, { recursive: true });
      expect((await exec(["mount", loop, m])).code).toBe(0);
      const data = "customer records ".repeat(1000);
      writeFileSync(join(m, "db.dat"), data);
      await unmount(m);
      const uuid = (await exec(["blkid", "-p", "-s", "UUID", "-o", "value", loop])).stdout.trim();
      return { uuid, sum: createHash("sha256").update(data).digest("hex") };
    } finally { await detachLoop(loop); }
  }
  const uuidOf = async (dev: string) => (await exec(["blkid", "-p", "-s", "UUID", "-o", "value", dev])).stdout.trim();

  rt("a device that already has data is never formatted: same filesystem, same file", async () => {
    const v = volume();
    const { uuid, sum } = await withData(v.id);
    expect(uuid).not.toBe("");
    const r = await convergeVolume(ctx(), v);
    expect(r.condition.reason).toBe("Mounted");
    expect(r.planned.map((a) => a.kind)).toContain("volume.format"); // planned "if blank" — and it was not
    const dev = findMount(v.volume.mount)!.device;
    expect(await uuidOf(dev)).toBe(uuid);
    expect(createHash("sha256").update(readFileSync(join(v.volume.mount, "db.dat"))).digest("hex")).toBe(sum);
  });

  rt("a device with another filesystem than the role's: FilesystemMismatch, not formatted, not mounted", async () => {
    const v = volume({ fs: "xfs" });
    const { uuid } = await withData(v.id);
    const r = await convergeVolume(ctx(), v);
    expect(r.condition).toMatchObject({ ready: false, reason: "FilesystemMismatch" });
    expect(findMount(v.volume.mount)).toBeNull();
    const again = await planVolumeNow(ctx(), v);
    expect(again).toMatchObject({ actions: [], condition: { reason: "FilesystemMismatch" } });
    const link = join(byIdDir, `nvme-Amazon_Elastic_Block_Store_${v.id.replace("-", "")}`);
    expect(await uuidOf(link)).toBe(uuid);
  });
});
