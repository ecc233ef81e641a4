// The compiled binary on a node with `identity: imds`, against the IMDS and EC2 stand-ins with the
// real SDK clients: instance tags written only when they change, a failed release tagged, an EBS
// volume attached, formatted and mounted before the process that writes on it starts, and the
// cached identity carrying a node through an IMDS outage. Root only (loop devices, mkfs, mount).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeTagsCommand, EC2Client } from "@aws-sdk/client-ec2";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { IMDS_TEST_CREDENTIALS, startImds, type ImdsServer } from "../servers/imds.ts";
import { APP, makeKit, role, stopApps, type Kit } from "./kit.ts";

const ID = "i-0e2e0000000000001", VOL = "vol-0e2e0000000000001", REGION = "us-east-1", ZONE = "us-east-1a";
const root = process.getuid?.() === 0;
if (!root) console.log("aws e2e tests skipped: attaching a volume needs root (loop devices, mkfs, mount)");
const rt = root ? test : test.skip;

let dir: string, ec2: Ec2Server, imds: ImdsServer, k: Kit, mnt: string;

beforeAll(async () => {
  if (!root) return;
  dir = mkdtempSync(join(tmpdir(), "agent-e2e-aws-"));
  ec2 = await startEc2({ dataDir: join(dir, "ebs"), byIdDir: join(dir, "by-id") });
  ec2.addInstance({ id: ID, zone: ZONE, tags: { Role: "web", Environment: "staging" } });
  ec2.addVolume({ id: VOL, zone: ZONE, sizeMiB: 64, tags: { Name: "e2e-data" } });
  imds = await startImds({ instanceId: ID, region: REGION, zone: ZONE, tags: { Role: "web", Environment: "staging" } });
  k = await makeKit("aws", role(), {
    // no keys in the environment: the agent must use the instance role's, as on EC2
    env: { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined },
    config: ["identity: imds", `imds: { endpoint: "${imds.url}", timeout: 500ms }`, `aws: { endpoint: "${ec2.url}" }`, `devices: { byIdDir: ${join(dir, "by-id")} }`],
  });
  mnt = join(k.dir, "volume");
});
afterAll(async () => {
  if (!root) return;
  if (k) await stopApps(k.state);
  if (mnt) Bun.spawnSync(["umount", mnt]);
  await ec2?.stop();
  await imds?.stop();
  await k?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const tags = () => ec2.instances.get(ID)!.tags;
const files = (version: string, over: Record<string, string> = {}) => ({ VERSION: `${version}\n`, "app.ts": APP, "roles/web.yaml": role(), ...over });

describe("agent once with identity: imds", () => {
  let v1: string;

  rt("the first converge writes agent:commit and agent:state=converged on the instance", async () => {
    v1 = await k.release(files("v1"), "v1");
    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("not converged");
    expect(r.code).toBe(0);
    const s = k.status();
    expect(s.instance).toMatchObject({ id: ID, role: "web", environment: "staging", region: REGION, zone: ZONE });
    expect(tags()).toMatchObject({ "agent:commit": v1, "agent:state": "converged" });
    expect(tags()["agent:failed"]).toBeUndefined();
    // and as any client sees them, through the real SDK
    const client = new EC2Client({ region: REGION, endpoint: ec2.url, credentials: { accessKeyId: "AKIDE2E", secretAccessKey: "x" }, maxAttempts: 1 });
    const out = await client.send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: [ID] }] }));
    const seen = Object.fromEntries((out.Tags ?? []).map((t) => [t.Key, t.Value]));
    expect(seen).toMatchObject({ "agent:commit": v1, "agent:state": "converged" });
    // the agent signed with the instance role's keys, which the SDK read from IMDS
    const writes = ec2.calls.filter((c) => c.action === "CreateTags");
    expect(writes.length).toBe(1);
    expect(writes[0]!.accessKeyId).toBe(IMDS_TEST_CREDENTIALS.accessKeyId);
    // the SDK clients were loaded on demand, inside the compiled binary, and the log says so once each
    const loads = r.stderr.split("\n").filter((l) => l.includes("loaded an AWS SDK client"));
    expect(loads.map((l) => JSON.parse(l).package).sort()).toEqual(["@aws-sdk/client-ec2", "@aws-sdk/ec2-metadata-service"]);
    // neither stays in the agent: the EC2 client in `agent _ec2`, a child that exits after the
    // converge, and the IMDS client in `agent _imds`, a child that serves the tick's identity reads
    expect(loads.map((l) => [JSON.parse(l).package, JSON.parse(l).in ?? "agent"]).sort()).toEqual([["@aws-sdk/client-ec2", "agent _ec2"], ["@aws-sdk/ec2-metadata-service", "agent _imds"]]);
  });

  rt("a second run with nothing changed makes no EC2 call at all", async () => {
    const before = ec2.calls.length;
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect(ec2.calls.slice(before)).toEqual([]);
  });

  rt("a failed release: agent:failed=<commit>, agent:state=failed, agent:commit stays on the running release", async () => {
    const bad = await k.release(files("v2", { "app.ts": `console.error("cannot start"); process.exit(1);\n` }), "v2 crashes");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(1);
    expect(tags()).toMatchObject({ "agent:commit": v1, "agent:state": "failed", "agent:failed": bad });
    // nothing changed since: no call
    const before = ec2.calls.length;
    expect((await k.agent(["once"])).code).toBe(1);
    expect(ec2.calls.slice(before).filter((c) => c.action === "CreateTags")).toEqual([]);
  });

  rt("a role with a volume: attached, formatted, mounted, and only then its process starts (it writes on the volume)", async () => {
    const withVolume = role(`  writer:
    run: /bin/sh -c "echo written-on-the-volume > ${mnt}/proof; exec sleep 600"
    minUptime: 300ms
volumes:
  data: { mount: ${mnt}, fs: ext4, format: if-blank }
`);
    const v3 = await k.release(files("v3", { "roles/web.yaml": withVolume }), "v3 with a volume", `roles:\n  web:\n    volumes:\n      data: { id: ${VOL} }\n`);
    const r = await k.agent(["once"]);
    expect(r.stderr).not.toContain("not converged");
    expect(r.code).toBe(0);
    expect(ec2.calls.some((c) => c.action === "AttachVolume" && c.params.VolumeId === VOL && c.params.InstanceId === ID)).toBe(true);
    expect(ec2.volumes.get(VOL)!.attachment).toMatchObject({ instanceId: ID, state: "attached" });
    const mount = readFileSync("/proc/mounts", "utf8").split("\n").find((l) => l.split(" ")[1] === mnt);
    expect(mount?.split(" ")[2]).toBe("ext4");
    // written after the mount: a file written before it would be hidden under the mounted filesystem
    expect(readFileSync(join(mnt, "proof"), "utf8")).toBe("written-on-the-volume\n");
    expect(statSync(join(mnt, "proof")).dev).toBe(statSync(mnt).dev);
    expect(statSync(mnt).dev).not.toBe(statSync(k.dir).dev);
    const s = k.status();
    expect(s.resources.find((x: any) => x.ref === "volume/data")).toMatchObject({ ready: true });
    expect(s.processes.find((p: any) => p.name === "writer")).toMatchObject({ commit: v3, healthy: true });
    expect(tags()).toMatchObject({ "agent:commit": v3, "agent:state": "converged" });
  });

  rt("IMDS down after the identity was cached: still converges, and status says the identity came from the cache", async () => {
    imds.faults.down = true;
    try {
      const before = ec2.calls.length;
      const r = await k.agent(["once"]);
      expect(r.stderr).not.toContain("not converged");
      expect(r.code).toBe(0);
      const s = k.status();
      expect(s.phase).toBe("converged");
      expect(s.instance.id).toBe(ID);
      expect(s.notices.join("\n")).toContain("identity from the cache");
      expect(ec2.calls.slice(before)).toEqual([]);
      expect(imds.requests.some((q) => q.status === 0)).toBe(true);
    } finally {
      imds.faults.down = false;
    }
  });
});
