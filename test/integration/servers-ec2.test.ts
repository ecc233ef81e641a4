// The EC2 Query API stand-in, proven with the real @aws-sdk/client-ec2: every action's happy path
// and error codes, throttling and 5xx faults, attach delay, and (as root) the loop device and
// by-id link behind an attached volume.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  AssociateAddressCommand, AttachVolumeCommand, CreateTagsCommand, DescribeAddressesCommand, DescribeInstancesCommand,
  DescribeTagsCommand, DescribeVolumesCommand, DetachVolumeCommand, EC2Client,
} from "@aws-sdk/client-ec2";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { blockDeviceSize, byIdLinkName, isRoot, loopDevicesFor, mountsOf } from "../servers/loop.ts";
import { exec } from "../../agent/host/exec.ts";
import { firstLine } from "../servers/cli.ts";

const root = isRoot();
if (!root) console.log("servers-ec2: not root: loop device and mount tests skip (attachments stay API-only)");

let dir: string;
let ec2: Ec2Server;
const credentials = { accessKeyId: "AKIDEC2TEST", secretAccessKey: "secret" };
const sdk = (maxAttempts = 1) => new EC2Client({ region: "us-east-1", endpoint: ec2.url, credentials, maxAttempts });
const fail = (p: Promise<unknown>) => p.then(() => { throw new Error("expected the call to fail"); }, (e) => e as Error & { $metadata?: { httpStatusCode?: number } });

function seed(s: Ec2Server) {
  s.addInstance({ id: "i-0aaa", zone: "us-east-1a", tags: { Role: "web", Environment: "staging" }, privateIp: "10.0.0.5" });
  s.addInstance({ id: "i-0bbb", zone: "us-east-1a", tags: { Role: "db" } });
  s.addInstance({ id: "i-0ccc", zone: "us-east-1b", tags: { Role: "db" } });
  s.addVolume({ id: "vol-0d1", zone: "us-east-1a", sizeMiB: 16, tags: { Name: "db-data" } });
  s.addVolume({ id: "vol-0d2", zone: "us-east-1a", sizeMiB: 16, tags: { Name: "other" } });
  s.addAddress({ allocationId: "eipalloc-01", publicIp: "203.0.113.10", tags: { Name: "web-pool" } });
  s.addAddress({ allocationId: "eipalloc-02", publicIp: "203.0.113.11" });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ec2-standin-"));
  ec2 = await startEc2({ dataDir: join(dir, "data"), byIdDir: join(dir, "by-id") });
  seed(ec2);
});
afterAll(async () => {
  await ec2.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function volumeState(client: EC2Client, id: string) {
  const out = await client.send(new DescribeVolumesCommand({ VolumeIds: [id] }));
  return out.Volumes?.[0];
}

async function waitAttached(client: EC2Client, id: string) {
  for (let i = 0; i < 200; i++) {
    const v = (await client.send(new DescribeVolumesCommand({ VolumeIds: [id] }))).Volumes?.[0];
    if (v?.Attachments?.[0]?.State === "attached") return v;
    await Bun.sleep(20);
  }
  throw new Error(`${id} never became attached`);
}

describe("EC2 stand-in with the real EC2Client", () => {
  test("DescribeInstances by id and by filter; unknown id is InvalidInstanceID.NotFound", async () => {
    const c = sdk();
    const byId = await c.send(new DescribeInstancesCommand({ InstanceIds: ["i-0aaa"] }));
    const i = byId.Reservations?.[0]?.Instances?.[0];
    expect(i?.InstanceId).toBe("i-0aaa");
    expect(i?.Placement?.AvailabilityZone).toBe("us-east-1a");
    expect(i?.PrivateIpAddress).toBe("10.0.0.5");
    expect(i?.State?.Name).toBe("running");
    expect(Object.fromEntries((i?.Tags ?? []).map((t) => [t.Key, t.Value]))).toEqual({ Role: "web", Environment: "staging" });
    const dbs = await c.send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:Role", Values: ["db"] }, { Name: "availability-zone", Values: ["us-east-1a"] }] }));
    expect(dbs.Reservations?.flatMap((r) => r.Instances ?? []).map((x) => x.InstanceId)).toEqual(["i-0bbb"]);
    const e = await fail(c.send(new DescribeInstancesCommand({ InstanceIds: ["i-0nope"] })));
    expect(e.name).toBe("InvalidInstanceID.NotFound");
    expect(e.$metadata?.httpStatusCode).toBe(400);
  });

  test("CreateTags on an instance, a volume and an address; DescribeTags reads them back", async () => {
    const c = sdk();
    await c.send(new CreateTagsCommand({ Resources: ["i-0aaa", "vol-0d1", "eipalloc-01"], Tags: [{ Key: "agent:commit", Value: "9fce" }] }));
    expect(ec2.instances.get("i-0aaa")?.tags["agent:commit"]).toBe("9fce");
    expect(ec2.volumes.get("vol-0d1")?.tags["agent:commit"]).toBe("9fce");
    expect(ec2.addresses.get("eipalloc-01")?.tags?.["agent:commit"]).toBe("9fce");
    const mine = await c.send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: ["i-0aaa"] }, { Name: "key", Values: ["agent:commit"] }] }));
    expect(mine.Tags).toEqual([{ ResourceId: "i-0aaa", ResourceType: "instance", Key: "agent:commit", Value: "9fce" }]);
    const volumes = await c.send(new DescribeTagsCommand({ Filters: [{ Name: "resource-type", Values: ["volume"] }, { Name: "key", Values: ["Name"] }] }));
    expect(volumes.Tags?.map((t) => `${t.ResourceId}=${t.Value}`).sort()).toEqual(["vol-0d1=db-data", "vol-0d2=other"]);
    // One unknown resource: nothing is tagged.
    const e = await fail(c.send(new CreateTagsCommand({ Resources: ["i-0bbb", "vol-0nope"], Tags: [{ Key: "x", Value: "y" }] })));
    expect(e.name).toBe("InvalidVolume.NotFound");
    expect(ec2.instances.get("i-0bbb")?.tags.x).toBeUndefined();
  });

  test("DescribeAddresses and AssociateAddress, with and without reassociation", async () => {
    const c = sdk();
    const pool = await c.send(new DescribeAddressesCommand({ Filters: [{ Name: "tag:Name", Values: ["web-pool"] }] }));
    expect(pool.Addresses?.map((a) => a.AllocationId)).toEqual(["eipalloc-01"]);
    const assoc = await c.send(new AssociateAddressCommand({ AllocationId: "eipalloc-01", InstanceId: "i-0aaa", AllowReassociation: false }));
    expect(assoc.AssociationId).toMatch(/^eipassoc-/);
    const held = await c.send(new DescribeAddressesCommand({ Filters: [{ Name: "instance-id", Values: ["i-0aaa"] }] }));
    expect(held.Addresses?.map((a) => [a.AllocationId, a.PublicIp, a.AssociationId])).toEqual([["eipalloc-01", "203.0.113.10", assoc.AssociationId]]);
    const taken = await fail(c.send(new AssociateAddressCommand({ AllocationId: "eipalloc-01", InstanceId: "i-0bbb", AllowReassociation: false })));
    expect(taken.name).toBe("Resource.AlreadyAssociated");
    expect(ec2.addresses.get("eipalloc-01")?.instanceId).toBe("i-0aaa");
    await c.send(new AssociateAddressCommand({ AllocationId: "eipalloc-01", InstanceId: "i-0bbb", AllowReassociation: true }));
    const byId = await c.send(new DescribeAddressesCommand({ AllocationIds: ["eipalloc-01"] }));
    expect(byId.Addresses?.[0]?.InstanceId).toBe("i-0bbb");
    expect((await fail(c.send(new DescribeAddressesCommand({ AllocationIds: ["eipalloc-0nope"] })))).name).toBe("InvalidAllocationID.NotFound");
    expect((await fail(c.send(new AssociateAddressCommand({ AllocationId: "eipalloc-02", InstanceId: "i-0nope" })))).name).toBe("InvalidInstanceID.NotFound");
  });

  test("DescribeVolumes by id and by tag, zone and attachment filters", async () => {
    const c = sdk();
    const v = await volumeState(c, "vol-0d1");
    expect(v).toMatchObject({ VolumeId: "vol-0d1", Size: 1, AvailabilityZone: "us-east-1a", State: "available" });
    const tagged = await c.send(new DescribeVolumesCommand({ Filters: [{ Name: "tag:Name", Values: ["db-data"] }, { Name: "availability-zone", Values: ["us-east-1a"] }] }));
    expect(tagged.Volumes?.map((x) => x.VolumeId)).toEqual(["vol-0d1"]);
    const none = await c.send(new DescribeVolumesCommand({ Filters: [{ Name: "attachment.instance-id", Values: ["i-0aaa"] }] }));
    expect(none.Volumes).toEqual([]);
    expect((await fail(c.send(new DescribeVolumesCommand({ VolumeIds: ["vol-0nope"] })))).name).toBe("InvalidVolume.NotFound");
  });

  test("AttachVolume errors: NotFound, ZoneMismatch, VolumeInUse, MissingParameter", async () => {
    const c = sdk();
    const attach = (VolumeId: string, InstanceId: string) => c.send(new AttachVolumeCommand({ VolumeId, InstanceId, Device: "/dev/sdf" }));
    expect((await fail(attach("vol-0nope", "i-0aaa"))).name).toBe("InvalidVolume.NotFound");
    expect((await fail(attach("vol-0d2", "i-0nope"))).name).toBe("InvalidInstanceID.NotFound");
    expect((await fail(attach("vol-0d2", "i-0ccc"))).name).toBe("InvalidVolume.ZoneMismatch");
    const noDevice = await fail(c.send(new AttachVolumeCommand({ VolumeId: "vol-0d2", InstanceId: "i-0bbb" } as never)));
    expect(noDevice.name).toBe("MissingParameter");
    ec2.volumes.get("vol-0d2")!.state = "creating";
    expect((await fail(attach("vol-0d2", "i-0bbb"))).name).toBe("IncorrectState");
    ec2.volumes.get("vol-0d2")!.state = "available";
    await attach("vol-0d2", "i-0bbb");
    expect((await fail(attach("vol-0d2", "i-0aaa"))).name).toBe("VolumeInUse");
    await waitAttached(c, "vol-0d2");
    await c.send(new DetachVolumeCommand({ VolumeId: "vol-0d2" }));
    expect((await volumeState(c, "vol-0d2"))?.State).toBe("available");
    expect(existsSync(join(dir, "by-id", byIdLinkName("vol-0d2")))).toBe(false);
  });

  test("attach delay: attaching first, then attached; as root the by-id link is a loop device of the volume's size", async () => {
    const c = sdk();
    ec2.faults.attachDelayMs = 300;
    try {
      const out = await c.send(new AttachVolumeCommand({ VolumeId: "vol-0d1", InstanceId: "i-0aaa", Device: "/dev/sdf" }));
      expect(out.State).toBe("attaching");
      const early = await volumeState(c, "vol-0d1");
      expect(early?.State).toBe("in-use");
      expect(early?.Attachments?.[0]).toMatchObject({ InstanceId: "i-0aaa", Device: "/dev/sdf", State: "attaching" });
      const v = await waitAttached(c, "vol-0d1");
      expect(v.Attachments?.[0]?.InstanceId).toBe("i-0aaa");
      const byInstance = await c.send(new DescribeVolumesCommand({ Filters: [{ Name: "attachment.instance-id", Values: ["i-0aaa"] }] }));
      expect(byInstance.Volumes?.map((x) => x.VolumeId)).toEqual(["vol-0d1"]);
    } finally {
      ec2.faults.attachDelayMs = 0;
    }
    const link = join(dir, "by-id", "nvme-Amazon_Elastic_Block_Store_vol0d1");
    if (!root) {
      console.log("not root: no loop device or by-id link is made (API state only)");
      expect(existsSync(link)).toBe(false);
      return;
    }
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    const dev = readlinkSync(link);
    expect(dev).toMatch(/^\/dev\/loop\d+$/);
    expect(statSync(link).isBlockDevice()).toBe(true);
    expect(await blockDeviceSize(link)).toBe(16 * 1024 * 1024);
    expect(ec2.volumes.get("vol-0d1")?.attachment?.loop).toBe(dev);
    expect(await loopDevicesFor(ec2.backingFile("vol-0d1"))).toEqual([dev]);
  });

  test("throttling and 5xx surface as errors; with retries the SDK gets through", async () => {
    const c = sdk();
    ec2.faults.throttle = 1;
    const throttled = await fail(c.send(new DescribeInstancesCommand({})));
    expect(throttled.name).toBe("RequestLimitExceeded");
    expect(throttled.$metadata?.httpStatusCode).toBe(503);
    ec2.faults.fail5xx = 1;
    const broken = await fail(c.send(new DescribeInstancesCommand({})));
    expect(broken.name).toBe("InternalError");
    expect(broken.$metadata?.httpStatusCode).toBe(500);
    const before = ec2.calls.length;
    ec2.faults.fail5xx = 2;
    const out = await sdk(3).send(new DescribeInstancesCommand({ InstanceIds: ["i-0aaa"] }));
    expect(out.Reservations?.[0]?.Instances?.[0]?.InstanceId).toBe("i-0aaa");
    expect(ec2.calls.slice(before).map((x) => x.status)).toEqual([500, 500, 200]);
    expect(ec2.calls.at(-1)).toMatchObject({ action: "DescribeInstances", params: { "InstanceId.1": "i-0aaa" }, accessKeyId: "AKIDEC2TEST" });
  });

  test("raw HTTP: unsigned is 401 AuthFailure, unknown action InvalidAction, no Version MissingParameter", async () => {
    const post = (body: string, headers: Record<string, string> = {}) =>
      fetch(ec2.url, { method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded", ...headers } });
    const signed = { authorization: "AWS4-HMAC-SHA256 Credential=AKIDRAW/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00" };
    const unsigned = await post("Action=DescribeInstances&Version=2016-11-15");
    expect(unsigned.status).toBe(401);
    expect(await unsigned.text()).toContain("<Code>AuthFailure</Code>");
    const unknown = await post("Action=TerminateInstances&Version=2016-11-15", signed);
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toMatch(/<Response><Errors><Error><Code>InvalidAction<\/Code><Message>.+<\/Message><\/Error><\/Errors><RequestID>/);
    const noVersion = await post("Action=DescribeInstances", signed);
    expect(await noVersion.text()).toContain("<Code>MissingParameter</Code>");
    // Values are escaped in the XML.
    ec2.instances.get("i-0bbb")!.tags.Note = "a<b & \"c\"";
    const c = sdk();
    const out = await c.send(new DescribeInstancesCommand({ InstanceIds: ["i-0bbb"] }));
    expect(out.Reservations?.[0]?.Instances?.[0]?.Tags?.find((t) => t.Key === "Note")?.Value).toBe("a<b & \"c\"");
  });
});

describe("stop() and the command line", () => {
  test.skipIf(!root)("stop() detaches every loop device and removes the by-id links", async () => {
    const d = mkdtempSync(join(tmpdir(), "ec2-stop-"));
    const s = await startEc2({ dataDir: join(d, "data"), byIdDir: join(d, "by-id") });
    try {
      s.addInstance({ id: "i-0s", zone: "us-east-1a", tags: {} });
      s.addVolume({ id: "vol-0s1", zone: "us-east-1a", sizeMiB: 8 });
      const c = new EC2Client({ region: "us-east-1", endpoint: s.url, credentials, maxAttempts: 1 });
      await c.send(new AttachVolumeCommand({ VolumeId: "vol-0s1", InstanceId: "i-0s", Device: "/dev/sdg" }));
      for (let i = 0; i < 200 && s.volumes.get("vol-0s1")?.attachment?.state !== "attached"; i++) await Bun.sleep(20);
      expect(s.volumes.get("vol-0s1")?.attachment?.state).toBe("attached");
      const link = join(d, "by-id", byIdLinkName("vol-0s1"));
      expect((await loopDevicesFor(s.backingFile("vol-0s1"))).length).toBe(1);
      await s.stop();
      expect(await loopDevicesFor(s.backingFile("vol-0s1"))).toEqual([]);
      expect(existsSync(link)).toBe(false);
    } finally {
      await s.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });

  test.skipIf(!root)("stop() unmounts a filesystem mounted from an attached volume; several attach at once", async () => {
    const d = mkdtempSync(join(tmpdir(), "ec2-mounted-"));
    const s = await startEc2({ dataDir: join(d, "data"), byIdDir: join(d, "by-id") });
    const mnt = join(d, "mnt");
    try {
      s.addInstance({ id: "i-0m", zone: "us-east-1a", tags: {} });
      const ids = ["vol-0m1", "vol-0m2", "vol-0m3"];
      for (const id of ids) s.addVolume({ id, zone: "us-east-1a", sizeMiB: 8 });
      const c = new EC2Client({ region: "us-east-1", endpoint: s.url, credentials, maxAttempts: 1 });
      await Promise.all(ids.map((VolumeId, n) => c.send(new AttachVolumeCommand({ VolumeId, InstanceId: "i-0m", Device: `/dev/sd${"fgh"[n]}` }))));
      for (const id of ids) await waitAttached(c, id);
      const devices = ids.map((id) => readlinkSync(join(d, "by-id", byIdLinkName(id))));
      expect(new Set(devices).size).toBe(3);
      const link = join(d, "by-id", byIdLinkName("vol-0m1"));
      expect((await exec(["mkfs.ext4", "-q", "-F", link])).code).toBe(0);
      mkdirSync(mnt);
      expect((await exec(["mount", link, mnt])).code).toBe(0);
      expect(mountsOf(devices[0]!)).toEqual([mnt]);
      await s.stop();
      expect(mountsOf(devices[0]!)).toEqual([]);
      for (const id of ids) expect(await loopDevicesFor(s.backingFile(id))).toEqual([]);
    } finally {
      await s.stop();
      await exec(["umount", mnt]);
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("loopDevices: false keeps attachments API-only", async () => {
    const d = mkdtempSync(join(tmpdir(), "ec2-nonroot-"));
    const s = await startEc2({ dataDir: join(d, "data"), byIdDir: join(d, "by-id"), loopDevices: false });
    try {
      s.addInstance({ id: "i-0n", zone: "us-east-1a", tags: {} });
      s.addVolume({ id: "vol-0n1", zone: "us-east-1a", sizeMiB: 4 });
      const c = new EC2Client({ region: "us-east-1", endpoint: s.url, credentials, maxAttempts: 1 });
      await c.send(new AttachVolumeCommand({ VolumeId: "vol-0n1", InstanceId: "i-0n", Device: "/dev/sdf" }));
      await waitAttached(c, "vol-0n1");
      expect(existsSync(join(d, "by-id", byIdLinkName("vol-0n1")))).toBe(false);
      expect(s.volumes.get("vol-0n1")?.attachment?.loop).toBeUndefined();
    } finally {
      await s.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });

  test("bun test/servers/ec2.ts --state seeds the server, prints {url}, stops on SIGTERM", async () => {
    const d = mkdtempSync(join(tmpdir(), "ec2-cli-"));
    const seedFile = join(d, "seed.json");
    writeFileSync(seedFile, JSON.stringify({
      instances: [{ id: "i-0cli", zone: "us-east-1a", tags: { Role: "web" } }],
      volumes: [{ id: "vol-0cli", zone: "us-east-1a", sizeMiB: 4 }],
      addresses: [{ allocationId: "eipalloc-0cli", publicIp: "198.51.100.7" }],
    }));
    const p = Bun.spawn([process.execPath, join(import.meta.dir, "../servers/ec2.ts"), "--port", "0",
      "--data-dir", join(d, "data"), "--by-id-dir", join(d, "by-id"), "--state", seedFile], { stdout: "pipe", stderr: "pipe" });
    try {
      const { url } = JSON.parse(await firstLine(p.stdout));
      const c = new EC2Client({ region: "us-east-1", endpoint: url, credentials, maxAttempts: 1 });
      const out = await c.send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:Role", Values: ["web"] }] }));
      expect(out.Reservations?.[0]?.Instances?.[0]?.InstanceId).toBe("i-0cli");
      const addr = await c.send(new DescribeAddressesCommand({ PublicIps: ["198.51.100.7"] }));
      expect(addr.Addresses?.[0]?.AllocationId).toBe("eipalloc-0cli");
      expect(existsSync(join(d, "data", "vol-0cli.img"))).toBe(true);
      await c.send(new AttachVolumeCommand({ VolumeId: "vol-0cli", InstanceId: "i-0cli", Device: "/dev/sdf" }));
      await waitAttached(c, "vol-0cli");
    } finally {
      p.kill("SIGTERM");
      expect(await p.exited).toBe(0);
    }
    try {
      // SIGTERM detached the loop device it made.
      expect(await loopDevicesFor(join(d, "data", "vol-0cli.img"))).toEqual([]);
      expect(existsSync(join(d, "by-id", byIdLinkName("vol-0cli")))).toBe(false);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

