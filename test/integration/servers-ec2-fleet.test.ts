// The EC2 stand-in's fleet side, proven with the real @aws-sdk/client-ec2: DescribeInstances pages
// (MaxResults/NextToken), tag and instance-state-name filters, EC2's token buckets answering
// RequestLimitExceeded, and stale reads (a caller's tag writes reach other callers later).
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateTagsCommand, DescribeInstancesCommand, DescribeTagsCommand, EC2Client, type Filter } from "@aws-sdk/client-ec2";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { EC2_LIMITS } from "../servers/ec2-limits.ts";

let dir: string;
let ec2: Ec2Server;
let startLimits: unknown;
const sdk = (key = "AKIDNODEA") => new EC2Client({ region: "us-east-1", endpoint: ec2.url, credentials: { accessKeyId: key, secretAccessKey: "s" }, maxAttempts: 1 });
const fail = (p: Promise<unknown>) => p.then(() => { throw new Error("expected the call to fail"); }, (e) => e as Error & { $metadata?: { httpStatusCode?: number } });
const ids = (r: { Reservations?: { Instances?: { InstanceId?: string }[] }[] }) => (r.Reservations ?? []).flatMap((x) => x.Instances ?? []).map((i) => i.InstanceId!);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ec2-fleet-"));
  ec2 = await startEc2({ dataDir: join(dir, "data"), byIdDir: join(dir, "by-id"), loopDevices: false });
  startLimits = structuredClone(ec2.limits);
  for (let n = 0; n < 12; n++) {
    ec2.addInstance({ id: `i-0${String(n).padStart(3, "0")}`, zone: "us-east-1a", tags: { Role: n % 2 ? "web" : "worker", Environment: n < 10 ? "production" : "staging", "agent:commit": "a".repeat(40) },
      state: n === 3 ? "terminated" : n === 4 ? "pending" : "running", launchTime: new Date(Date.UTC(2026, 11, 1, 0, n)) });
  }
});
afterAll(async () => { await ec2.stop(); rmSync(dir, { recursive: true, force: true }); });
beforeEach(() => { ec2.limits = structuredClone(EC2_LIMITS); ec2.staleTagsMs = 0; });

describe("DescribeInstances pages and filters", () => {
  test("MaxResults 5 gives pages of 5 with a NextToken until the last; together every instance once", async () => {
    const c = sdk();
    const pages: string[][] = [];
    let token: string | undefined;
    do {
      const r = await c.send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: token }));
      pages.push(ids(r));
      token = r.NextToken;
    } while (token);
    expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
    expect(pages.flat()).toEqual([...ec2.instances.keys()]);
  });
  test("without MaxResults: everything in one answer, no NextToken", async () => {
    const r = await sdk().send(new DescribeInstancesCommand({}));
    expect(ids(r)).toHaveLength(12);
    expect(r.NextToken).toBeUndefined();
  });
  test("tag:Key, tag-key and instance-state-name filters combine; the state and launch time come back", async () => {
    const f: Filter[] = [{ Name: "tag:Environment", Values: ["production"] }, { Name: "instance-state-name", Values: ["pending", "running"] }];
    const r = await sdk().send(new DescribeInstancesCommand({ Filters: f, MaxResults: 1000 }));
    expect(ids(r)).toEqual(["i-0000", "i-0001", "i-0002", "i-0004", "i-0005", "i-0006", "i-0007", "i-0008", "i-0009"]);
    const i4 = r.Reservations!.flatMap((x) => x.Instances!).find((i) => i.InstanceId === "i-0004")!;
    expect(i4.State).toEqual({ Code: 0, Name: "pending" });
    expect(i4.LaunchTime?.toISOString()).toBe("2026-12-01T00:04:00.000Z");
    const terminated = await sdk().send(new DescribeInstancesCommand({ Filters: [{ Name: "instance-state-name", Values: ["terminated"] }] }));
    expect(ids(terminated)).toEqual(["i-0003"]);
    const keyed = await sdk().send(new DescribeInstancesCommand({ Filters: [{ Name: "tag-key", Values: ["agent:commit"] }, { Name: "tag:Role", Values: ["web"] }, { Name: "tag:Environment", Values: ["staging"] }] }));
    expect(ids(keyed)).toEqual(["i-0011"]);
  });
  test("a filtered page counts only matching instances", async () => {
    const r = await sdk().send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:Role", Values: ["web"] }], MaxResults: 5 }));
    expect(ids(r)).toEqual(["i-0001", "i-0003", "i-0005", "i-0007", "i-0009"]);
    const rest = await sdk().send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:Role", Values: ["web"] }], MaxResults: 5, NextToken: r.NextToken }));
    expect(ids(rest)).toEqual(["i-0011"]);
    expect(rest.NextToken).toBeUndefined();
  });
  test("EC2's parameter errors: MaxResults out of 5..1000, MaxResults with InstanceIds, a NextToken it did not give", async () => {
    expect((await fail(sdk().send(new DescribeInstancesCommand({ MaxResults: 2 })))).name).toBe("InvalidParameterValue");
    expect((await fail(sdk().send(new DescribeInstancesCommand({ MaxResults: 5, InstanceIds: ["i-0000"] })))).name).toBe("InvalidParameterCombination");
    expect((await fail(sdk().send(new DescribeInstancesCommand({ MaxResults: 5, NextToken: "bogus" })))).name).toBe("InvalidParameterValue");
  });
});

describe("token buckets", () => {
  test("the defaults are EC2's: Describe* 100 burst, 20/s; CreateTags 100, 10/s", () => {
    expect(startLimits).toEqual({ describe: { burst: 100, perSecond: 20 }, createTags: { burst: 100, perSecond: 10 } });
  });
  test("an empty Describe bucket answers 503 RequestLimitExceeded to every caller; CreateTags has its own bucket", async () => {
    ec2.limits.describe = { burst: 3, perSecond: 0.001 };
    for (let n = 0; n < 3; n++) await sdk(n % 2 ? "AKIDNODEA" : "AKIDNODEB").send(new DescribeInstancesCommand({ InstanceIds: ["i-0000"] }));
    const e = await fail(sdk("AKIDNODEC").send(new DescribeTagsCommand({})));
    expect(e.name).toBe("RequestLimitExceeded");
    expect(e.$metadata?.httpStatusCode).toBe(503);
    await sdk().send(new CreateTagsCommand({ Resources: ["i-0000"], Tags: [{ Key: "x", Value: "1" }] }));
    ec2.limits.createTags = { burst: 1, perSecond: 0.001 };
    await sdk().send(new CreateTagsCommand({ Resources: ["i-0000"], Tags: [{ Key: "x", Value: "2" }] }));
    expect((await fail(sdk().send(new CreateTagsCommand({ Resources: ["i-0000"], Tags: [{ Key: "x", Value: "3" }] })))).name).toBe("RequestLimitExceeded");
    expect(ec2.instances.get("i-0000")!.tags.x).toBe("2");
  });
  test("the bucket refills at perSecond", async () => {
    ec2.limits.describe = { burst: 1, perSecond: 50 };
    await sdk().send(new DescribeInstancesCommand({ InstanceIds: ["i-0000"] }));
    await Bun.sleep(60);   // 50/s: one token back after 20 ms
    await sdk().send(new DescribeInstancesCommand({ InstanceIds: ["i-0000"] }));
  });
  test("a class set to null is not limited", async () => {
    ec2.limits.describe = { burst: 1, perSecond: 0.001 };
    await sdk().send(new DescribeTagsCommand({}));
    expect((await fail(sdk().send(new DescribeTagsCommand({})))).name).toBe("RequestLimitExceeded");
    ec2.limits.describe = null;
    for (let n = 0; n < 5; n++) await sdk().send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: ["i-0000"] }] }));
  });
});

describe("stale reads", () => {
  test("with staleTagsMs, a tag write is seen at once by its writer and later by others", async () => {
    ec2.staleTagsMs = 60_000;
    await sdk("AKIDNODEA").send(new CreateTagsCommand({ Resources: ["i-0002"], Tags: [{ Key: "agent:state", Value: "deploying" }] }));
    const byTag = (key: string) => sdk(key).send(new DescribeInstancesCommand({ Filters: [{ Name: "tag:agent:state", Values: ["deploying"] }] }));
    expect(ids(await byTag("AKIDNODEA"))).toEqual(["i-0002"]);
    expect(ids(await byTag("AKIDNODEB"))).toEqual([]);
    const tags = await sdk("AKIDNODEB").send(new DescribeTagsCommand({ Filters: [{ Name: "resource-id", Values: ["i-0002"] }, { Name: "key", Values: ["agent:state"] }] }));
    expect(tags.Tags).toEqual([]);
    expect(ec2.instances.get("i-0002")!.tags["agent:state"]).toBe("deploying");   // the truth
  });
  test("once the delay has passed, everyone sees the write", async () => {
    ec2.staleTagsMs = 20;
    await sdk("AKIDNODEA").send(new CreateTagsCommand({ Resources: ["i-0005"], Tags: [{ Key: "agent:state", Value: "converged" }] }));
    await Bun.sleep(80);
    const r = await sdk("AKIDNODEB").send(new DescribeInstancesCommand({ InstanceIds: ["i-0005"] }));
    expect(r.Reservations![0]!.Instances![0]!.Tags).toContainEqual({ Key: "agent:state", Value: "converged" });
  });
});
