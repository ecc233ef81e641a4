// Benchmark of the AWS steps against the local EC2 stand-in (root, for loop devices):
// cold converge of a volume (attach + format + mount), of an address (associate), and the
// EC2 calls an idle tick makes. Run: bun scripts/bench-aws.ts [rounds]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCloudMemory, type CloudContext } from "../agent/cloud/context.ts";
import { createEc2 } from "../agent/cloud/ec2.ts";
import { convergeAddress } from "../agent/converge/address.ts";
import { convergeVolume } from "../agent/converge/volume.ts";
import { systemClock } from "../agent/core/clock.ts";
import { createLogger } from "../agent/core/log.ts";
import { findMount, unmount } from "../agent/host/block.ts";
import { startEc2 } from "../test/servers/ec2.ts";
import { isRoot } from "../test/servers/loop.ts";

const rounds = Number(process.argv[2] ?? 5);
const dir = mkdtempSync(join(tmpdir(), "bench-aws-"));
const byIdDir = join(dir, "by-id");
const ec2s = await startEc2({ dataDir: join(dir, "ebs"), byIdDir });
const ec2 = createEc2({ region: "us-east-1", endpoint: ec2s.url, credentials: { accessKeyId: "AKIDBENCH", secretAccessKey: "x" } });
const log = createLogger("bench", { level: "warn" });
const stats = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return `median ${s[Math.floor(s.length / 2)]!.toFixed(0)} ms, min ${s[0]!.toFixed(0)}, max ${s.at(-1)!.toFixed(0)}`; };
const vol: number[] = [], addr: number[] = [], idleCalls: number[] = [];
const mounts: string[] = [];
try {
  for (let i = 0; i < rounds; i++) {
    const instanceId = `i-0${i.toString(16).padStart(16, "0")}`;
    ec2s.addInstance({ id: instanceId, zone: "us-east-1a", tags: {} });
    ec2s.addAddress({ allocationId: `eipalloc-${i.toString(16).padStart(8, "0")}`, publicIp: `203.0.113.${i + 1}` });
    const ctx: CloudContext = { ec2, instanceId, zone: "us-east-1a", byIdDir, log, clock: systemClock, memory: createCloudMemory(), attachPollMs: 50 };
    if (isRoot()) {
      const id = `vol-0${(i + 1).toString(16).padStart(16, "0")}`;
      ec2s.addVolume({ id, zone: "us-east-1a", sizeMiB: 256 });
      const mount = join(dir, `mnt-${i}`); mounts.push(mount);
      const d = { name: "data", owner: "root", device: "/dev/sdf", binding: { id }, volume: { mount, fs: "ext4" as const, format: "if-blank" as const, options: ["defaults"] } };
      const t0 = performance.now();
      const r = await convergeVolume(ctx, d);
      vol.push(performance.now() - t0);
      if (!r.condition.ready) throw new Error(`volume not ready: ${r.condition.reason} ${r.condition.message}`);
      const before = ec2s.calls.length;
      await convergeVolume(ctx, d);
      idleCalls.push(ec2s.calls.length - before);
    }
    const t1 = performance.now();
    const a = await convergeAddress(ctx, [`eipalloc-${i.toString(16).padStart(8, "0")}`]);
    addr.push(performance.now() - t1);
    if (!a.condition.ready) throw new Error(`address not ready: ${a.condition.reason}`);
    const before = ec2s.calls.length;
    await convergeAddress(ctx, [`eipalloc-${i.toString(16).padStart(8, "0")}`]);
    idleCalls.push(ec2s.calls.length - before);
  }
  if (vol.length) console.log(`volume cold converge (attach + wait + mkfs.ext4 256 MiB + mount + chown): ${stats(vol)} over ${vol.length}`);
  else console.log("volume: skipped (not root)");
  console.log(`address cold converge (describe + associate + confirm): ${stats(addr)} over ${addr.length}`);
  console.log(`EC2 calls on idle ticks: ${idleCalls.reduce((a, b) => a + b, 0)} in ${idleCalls.length} idle passes`);
} finally {
  for (const m of mounts) if (findMount(m)) await unmount(m).catch(() => {});
  await ec2s.stop();
  rmSync(dir, { recursive: true, force: true });
}
