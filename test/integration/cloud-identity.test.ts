// Identity from IMDSv2 and instance tags, the EC2 client's retries and error mapping, and the
// agent:* tags: the real SDK clients against the IMDS and EC2 stand-ins over HTTP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEc2, type Ec2 } from "../../agent/cloud/ec2.ts";
import { createImds } from "../../agent/cloud/imds.ts";
import { identityProblem, resolveIdentity, type IdentityDeps } from "../../agent/cloud/identity.ts";
import { syncTags } from "../../agent/converge/tags.ts";
import { AgentError } from "../../agent/core/errors.ts";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { IMDS_TEST_CREDENTIALS, startImds, type ImdsServer } from "../servers/imds.ts";

const ID = "i-0123456789abcdef0";
const tagNames = { role: "Role", environment: "Environment" };
const creds = { accessKeyId: "AKIDTEST", secretAccessKey: "test-secret" };
let imds: ImdsServer, ec2s: Ec2Server, dir: string;
let ec2: Ec2;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "agent-cloud-"));
  imds = await startImds({ instanceId: ID, region: "us-east-1", zone: "us-east-1a", tags: { Role: "web", Environment: "production" } });
  ec2s = await startEc2({ dataDir: join(dir, "data"), byIdDir: join(dir, "by-id"), loopDevices: false });
  ec2s.addInstance({ id: ID, zone: "us-east-1a", tags: { Role: "web", Environment: "staging" } });
  ec2 = createEc2({ region: "us-east-1", endpoint: ec2s.url, credentials: creds });
});
afterAll(async () => {
  await imds?.stop();
  await ec2s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const deps = (over: Partial<IdentityDeps> = {}): IdentityDeps => ({
  imds: createImds({ endpoint: imds.url, timeoutMs: 500, retries: 0 }),
  ec2Factory: () => ec2, tagNames, cached: null, now: () => 1_700_000_000_000, ...over,
});

describe("resolveIdentity", () => {
  test("from IMDS: instance, region, zone, role and environment tags", async () => {
    const r = await resolveIdentity(deps());
    expect(r).toEqual({ source: "imds", identity: { instanceId: ID, region: "us-east-1", zone: "us-east-1a", role: "web", environment: "production", at: 1_700_000_000_000 } });
    expect(imds.requests.filter((q) => q.method === "PUT").length).toBeGreaterThan(0); // IMDSv2: a token first
  });

  test("IMDS down at first boot: IdentityUnavailable (transient); works once IMDS is back", async () => {
    imds.faults.down = true;
    const err = await resolveIdentity(deps()).catch((e) => e);
    expect(err).toBeInstanceOf(AgentError);
    expect(err.reason).toBe("IdentityUnavailable");
    expect(err.retry.kind).toBe("transient");
    expect(err.message).toContain("none is cached");
    imds.faults.down = false;
    expect((await resolveIdentity(deps())).identity.role).toBe("web");
  });

  test("IMDS down with a cached identity: keeps going from the cache and says so", async () => {
    const cached = { instanceId: ID, region: "us-east-1", zone: "us-east-1a", role: "web", environment: "production", at: 1_600_000_000_000 };
    imds.faults.down = true;
    try {
      const r = await resolveIdentity(deps({ cached }));
      expect(r.source).toBe("cache");
      expect(r.identity).toEqual(cached);
      expect(r.warning).toContain("cache");
      expect(r.warning).toContain(ID);
    } finally { imds.faults.down = false; }
  });

  test("token PUT refused: no IMDSv1 fallback, a clear error; the same client recovers afterwards", async () => {
    const md = createImds({ endpoint: imds.url, timeoutMs: 500, retries: 0 });
    imds.faults.refuseToken = true;
    const before = imds.requests.length;
    const err = await resolveIdentity(deps({ imds: md })).catch((e) => e);
    imds.faults.refuseToken = false;
    expect(err.reason).toBe("IdentityUnavailable");
    expect(err.message).toContain("token");
    // never a GET without a token (IMDSv1)
    expect(imds.requests.slice(before).filter((q) => q.method === "GET")).toEqual([]);
    expect((await resolveIdentity(deps({ imds: md }))).identity.instanceId).toBe(ID);
  });

  test("tags not in metadata: falls back to EC2 DescribeTags", async () => {
    imds.node.tagsInMetadata = false;
    try {
      const n = ec2s.calls.length;
      const r = await resolveIdentity(deps());
      expect(r.identity).toMatchObject({ role: "web", environment: "staging" }); // what EC2 says
      expect(ec2s.calls.slice(n).map((c) => c.action)).toEqual(["DescribeTags"]);
    } finally { imds.node.tagsInMetadata = true; }
  });

  test("DescribeTags fallback with the default credential chain uses the instance role from IMDS", async () => {
    imds.node.tagsInMetadata = false;
    const saved = { ...process.env };
    delete process.env.AWS_ACCESS_KEY_ID; delete process.env.AWS_SECRET_ACCESS_KEY; delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;
    process.env.AWS_CONFIG_FILE = join(dir, "none"); process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, "none");
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
    try {
      const n = ec2s.calls.length;
      const r = await resolveIdentity(deps({ ec2Factory: (region) => createEc2({ region, endpoint: ec2s.url }) }));
      expect(r.identity.role).toBe("web");
      expect(ec2s.calls.slice(n).map((c) => c.accessKeyId)).toEqual([IMDS_TEST_CREDENTIALS.accessKeyId]);
    } finally {
      process.env = saved;
      imds.node.tagsInMetadata = true;
    }
  });

  test("no role tag: role null and a NoRoleTag problem naming the tag", async () => {
    imds.node.tags = { Environment: "production" };
    try {
      const r = await resolveIdentity(deps());
      expect(r.identity.role).toBeNull();
      expect(identityProblem(r.identity, tagNames)).toMatchObject({ reason: "NoRoleTag" });
      expect(identityProblem(r.identity, tagNames)!.message).toContain("Role");
    } finally { imds.node.tags = { Role: "web", Environment: "production" }; }
  });
});

describe("Ec2 client", () => {
  test("throttling and 5xx are retried with backoff, then succeed", async () => {
    ec2s.faults.throttle = 2;
    ec2s.faults.fail5xx = 1;
    const n = ec2s.calls.length;
    expect(await ec2.describeInstanceTags(ID)).toMatchObject({ Role: "web" });
    expect(ec2s.calls.slice(n).map((c) => c.status)).toEqual([503, 503, 500, 200]);
  });

  test("throttled past the retries: Ec2Throttled; 5xx past the retries: Ec2Unavailable (both transient)", async () => {
    const quick = createEc2({ region: "us-east-1", endpoint: ec2s.url, credentials: creds, maxAttempts: 2 });
    ec2s.faults.throttle = 2;
    const t = await quick.describeInstanceTags(ID).catch((e) => e);
    expect([t.reason, t.retry.kind]).toEqual(["Ec2Throttled", "transient"]);
    ec2s.faults.fail5xx = 2;
    const u = await quick.describeInstanceTags(ID).catch((e) => e);
    expect([u.reason, u.retry.kind]).toEqual(["Ec2Unavailable", "transient"]);
  });

  test("client errors map to reasons: unknown volume, unknown address", async () => {
    expect((await ec2.describeVolumes({ ids: ["vol-0000000000000dead"] }).catch((e) => e)).reason).toBe("VolumeNotFound");
    expect((await ec2.describeAddresses(["eipalloc-0000dead"]).catch((e) => e)).reason).toBe("AddressNotFound");
  });
});

describe("syncTags", () => {
  test("writes only what changed, and makes no call when nothing did", async () => {
    const count = () => ec2s.calls.filter((c) => c.action === "CreateTags").length;
    const n0 = count();
    const want = { "agent:commit": "a".repeat(40), "agent:state": "converged", "agent:failed": "" };
    const w1 = await syncTags(ec2, ID, want, {});
    expect(w1).toEqual(want);
    expect(ec2s.instances.get(ID)!.tags).toMatchObject({ "agent:commit": "a".repeat(40), "agent:state": "converged" });
    expect(await syncTags(ec2, ID, want, w1)).toEqual(w1);
    expect(count()).toBe(n0 + 1);
    const w2 = await syncTags(ec2, ID, { ...want, "agent:state": "deploying" }, w1);
    expect(ec2s.instances.get(ID)!.tags["agent:state"]).toBe("deploying");
    expect(ec2s.calls.filter((c) => c.action === "CreateTags").at(-1)!.params).not.toHaveProperty("Tag.2.Key");
    expect(w2["agent:state"]).toBe("deploying");
  });
});
