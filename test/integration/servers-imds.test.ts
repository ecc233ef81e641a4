// The IMDSv2 stand-in, proven with the real @aws-sdk/ec2-metadata-service client and the SDK's
// default credential chain (instance-role keys reach the EC2 stand-in in the SigV4 Credential=).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MetadataService } from "@aws-sdk/ec2-metadata-service";
import { DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { startImds, IMDS_TEST_CREDENTIALS, type ImdsServer } from "../servers/imds.ts";
import { startEc2 } from "../servers/ec2.ts";
import { firstLine } from "../servers/cli.ts";

let imds: ImdsServer;
const client = (retries = 0, timeout = 1000) =>
  new MetadataService({ endpoint: imds.url, ec2MetadataV1Disabled: true, httpOptions: { timeout }, retries, backoff: 0 });

beforeAll(async () => {
  imds = await startImds({ instanceId: "i-0abc123", region: "eu-west-1", zone: "eu-west-1b", tags: { Role: "web", Environment: "staging" } });
});
afterAll(() => imds.stop());

function resetFaults() {
  Object.assign(imds.faults, { down: false, refuseToken: false, delayMs: 0 });
}

async function token(): Promise<string> {
  const r = await fetch(`${imds.url}/latest/api/token`, { method: "PUT", headers: { "x-aws-ec2-metadata-token-ttl-seconds": "60" } });
  expect(r.status).toBe(200);
  return r.text();
}

describe("IMDSv2 stand-in with the real MetadataService", () => {
  test("serves identity, placement and instance tags", async () => {
    const md = client();
    expect(await md.request("latest/meta-data/instance-id", {})).toBe("i-0abc123");
    expect(await md.request("latest/meta-data/placement/region", {})).toBe("eu-west-1");
    expect(await md.request("latest/meta-data/placement/availability-zone", {})).toBe("eu-west-1b");
    expect((await md.request("latest/meta-data/tags/instance", {})).split("\n").sort()).toEqual(["Environment", "Role"]);
    expect(await md.request("latest/meta-data/tags/instance/Role", {})).toBe("web");
    const doc = JSON.parse(await md.request("latest/dynamic/instance-identity/document", {}));
    expect(doc).toMatchObject({ instanceId: "i-0abc123", region: "eu-west-1", availabilityZone: "eu-west-1b", accountId: "123456789012" });
    // Every GET came after its own token PUT: IMDSv2, never v1.
    const gets = imds.requests.filter((r) => r.method === "GET");
    expect(gets.every((r) => r.status === 200)).toBe(true);
    expect(imds.requests.filter((r) => r.method === "PUT").length).toBeGreaterThanOrEqual(gets.length);
  });

  test("tags change live; a missing tag and disabled metadata tags are 404", async () => {
    const md = client();
    imds.node.tags.Release = "v43";
    expect(await md.request("latest/meta-data/tags/instance/Release", {})).toBe("v43");
    delete imds.node.tags.Release;
    const missing = await md.request("latest/meta-data/tags/instance/Release", {}).catch((e) => e);
    expect(missing.$metadata?.httpStatusCode).toBe(404);
    imds.node.tagsInMetadata = false;
    try {
      const off = await md.request("latest/meta-data/tags/instance", {}).catch((e) => e);
      expect(off.$metadata?.httpStatusCode).toBe(404);
      const offRole = await md.request("latest/meta-data/tags/instance/Role", {}).catch((e) => e);
      expect(offRole.$metadata?.httpStatusCode).toBe(404);
    } finally {
      imds.node.tagsInMetadata = true;
    }
  });

  test("instance-role credentials: listing and keys an hour ahead", async () => {
    const md = client();
    expect(await md.request("latest/meta-data/iam/security-credentials/", {})).toBe("agent-node");
    const c = JSON.parse(await md.request("latest/meta-data/iam/security-credentials/agent-node", {}));
    expect(c).toMatchObject({ Code: "Success", Type: "AWS-HMAC", AccessKeyId: IMDS_TEST_CREDENTIALS.accessKeyId, Token: IMDS_TEST_CREDENTIALS.sessionToken });
    expect(Date.parse(c.Expiration) - Date.now()).toBeGreaterThan(50 * 60_000);
    expect(Number.isNaN(Date.parse(c.LastUpdated))).toBe(false);
  });

  test("raw HTTP: 401 without or with a bad token, 400 without a TTL, // collapsed", async () => {
    expect((await fetch(`${imds.url}/latest/meta-data/instance-id`)).status).toBe(401);
    expect((await fetch(`${imds.url}/latest/meta-data/instance-id`, { headers: { "x-aws-ec2-metadata-token": "forged" } })).status).toBe(401);
    expect((await fetch(`${imds.url}/latest/api/token`, { method: "PUT" })).status).toBe(400);
    expect((await fetch(`${imds.url}/latest/api/token`)).status).toBe(405);
    const t = await token();
    const r = await fetch(`${imds.url}//latest/meta-data//instance-id`, { headers: { "x-aws-ec2-metadata-token": t } });
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("i-0abc123");
    expect(imds.requests.some((q) => q.status === 401 && q.path === "/latest/meta-data/instance-id")).toBe(true);
  });

  test("a refused token fails clearly and never falls back to IMDSv1", async () => {
    imds.faults.refuseToken = true;
    const before = imds.requests.length;
    try {
      const e = await client().request("latest/meta-data/instance-id", {}).catch((err) => err);
      expect(e).toBeInstanceOf(Error);
      expect(String(e.message)).toMatch(/token/i);
      const seen = imds.requests.slice(before);
      expect(seen.some((r) => r.method === "PUT" && r.status === 403)).toBe(true);
      expect(seen.some((r) => r.method === "GET")).toBe(false);
    } finally {
      resetFaults();
    }
  });

  test("down: connections closed, the client errors; a slow IMDS hits the client's timeout", async () => {
    imds.faults.down = true;
    try {
      const e = await client().request("latest/meta-data/instance-id", {}).catch((err) => err);
      expect(e).toBeInstanceOf(Error);
      expect(imds.requests.at(-1)?.status).toBe(0);
    } finally {
      resetFaults();
    }
    imds.faults.delayMs = 1500;
    try {
      const e = await client(0, 300).request("latest/meta-data/instance-id", {}).catch((err) => err);
      expect(e).toBeInstanceOf(Error);
    } finally {
      resetFaults();
    }
    expect(await client().request("latest/meta-data/instance-id", {})).toBe("i-0abc123");
  });
});

describe("the SDK's default credential chain against the stand-in", () => {
  test("EC2Client without credentials signs with the instance-role keys from IMDS", async () => {
    const dir = mkdtempSync(join(tmpdir(), "imds-chain-"));
    const ec2 = await startEc2({ dataDir: join(dir, "data"), byIdDir: join(dir, "by-id"), loopDevices: false });
    const saved = { ...process.env };
    try {
      for (const k of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"]) delete process.env[k];
      process.env.AWS_SHARED_CREDENTIALS_FILE = join(dir, "no-credentials");
      process.env.AWS_CONFIG_FILE = join(dir, "no-config");
      process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
      process.env.AWS_EC2_METADATA_V1_DISABLED = "true";
      ec2.addInstance({ id: "i-0abc123", zone: "eu-west-1b", tags: {} });
      const sdk = new EC2Client({ region: "eu-west-1", endpoint: ec2.url, maxAttempts: 1 });
      const out = await sdk.send(new DescribeInstancesCommand({ InstanceIds: ["i-0abc123"] }));
      expect(out.Reservations?.[0]?.Instances?.[0]?.InstanceId).toBe("i-0abc123");
      expect(ec2.calls.at(-1)?.accessKeyId).toBe(IMDS_TEST_CREDENTIALS.accessKeyId);
      expect(imds.requests.some((r) => r.path === "/latest/meta-data/iam/security-credentials/agent-node" && r.status === 200)).toBe(true);
      sdk.destroy();
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
      await ec2.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("command line", () => {
  test("bun test/servers/imds.ts prints {url} and stops on SIGTERM", async () => {
    const p = Bun.spawn([process.execPath, join(import.meta.dir, "../servers/imds.ts"), "--port", "0", "--instance-id", "i-cli",
      "--region", "us-east-1", "--zone", "us-east-1a", "--tag", "Role=web", "--tag", "Environment=staging"], { stdout: "pipe", stderr: "pipe" });
    try {
      const { url } = JSON.parse(await firstLine(p.stdout));
      const md = new MetadataService({ endpoint: url, ec2MetadataV1Disabled: true, httpOptions: { timeout: 1000 }, retries: 0 });
      expect(await md.request("latest/meta-data/tags/instance/Environment", {})).toBe("staging");
      expect(await md.request("latest/meta-data/instance-id", {})).toBe("i-cli");
    } finally {
      p.kill("SIGTERM");
    }
    expect(await p.exited).toBe(0);
  });
});

