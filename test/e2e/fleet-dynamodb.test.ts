// rollout.store: dynamodb on the compiled agent: a daemon (IMDS identity, EC2 stand-in) publishes its
// rollout record into a dynalite table through the real SDK (loaded lazily in the binary), and with
// maxInFlight: 1 it stays on v1 while another node holds the only deploy slot; once the slot is
// given back it takes it, moves to v2, and gives it back converged. Then a record left by an
// instance terminated mid-deploy fills the only place in flight: once it has been silent for a
// lease, one DescribeInstances by instance-id shows it terminated; its record is deleted and the
// node moves to v3.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { createRolloutTable, partitionOf } from "../../agent/cloud/dynamodb.ts";
import { createRolloutTableFor, startDynamoDb, type DynamoDbServer } from "../servers/dynamodb.ts";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { startImds, type ImdsServer } from "../servers/imds.ts";
import { AGENT, APP, makeKit, role, until, type Kit } from "./kit.ts";

const TABLE = "agent-rollout", P = partitionOf("staging", "web");
const SELF = "i-0e2e000000000000a", DEAD = "i-0dead00000000000d";
const KEYS = { AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "s", AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined };
const TAGS = { Role: "web", Environment: "staging" };
let k: Kit, db: DynamoDbServer, ec2: Ec2Server, imds: ImdsServer, daemon: Subprocess | null = null;
const table = () => createRolloutTable({ region: "local", table: TABLE, endpoint: db.url, credentials: { accessKeyId: "a", secretAccessKey: "s" } });
const status = (): any => { try { return JSON.parse(readFileSync(join(k.state, "status.json"), "utf8")); } catch { return null; } };
const ROLE = role().replace("deadline: 4s", "deadline: 2s");
const files = (v: string) => ({ VERSION: `${v}\n`, "app.ts": APP, "roles/web.yaml": ROLE });

beforeAll(async () => {
  db = await startDynamoDb();
  await createRolloutTableFor(db.url, TABLE);
  ec2 = await startEc2({ dataDir: join(tmpdir(), `fleet-ddb-ebs-${process.pid}`), byIdDir: join(tmpdir(), `fleet-ddb-by-id-${process.pid}`), loopDevices: false });
  ec2.addInstance({ id: SELF, zone: "us-east-1a", tags: { ...TAGS } });
  ec2.addInstance({ id: DEAD, zone: "us-east-1b", tags: { ...TAGS }, state: "terminated" });
  imds = await startImds({ instanceId: SELF, region: "us-east-1", zone: "us-east-1a", tags: TAGS });
  k = await makeKit("fleet-ddb", ROLE, {
    env: KEYS,
    config: ["identity: imds", `imds: { endpoint: "${imds.url}", timeout: 500ms }`, `aws: { endpoint: "${ec2.url}", endpoints: { dynamodb: "${db.url}" } }`, `rollout: { table: ${TABLE} }`],
  });
  await table().publish(P, { instance: "i-peer", commit: null, state: "converged", failed: null, since: null, version: "1" });
}, 60_000);

afterAll(async () => {
  daemon?.kill("SIGTERM");
  await daemon?.exited;
  await k?.stop();
  await db?.stop();
  await imds?.stop();
  await ec2?.stop();
  for (const d of ["fleet-ddb-ebs", "fleet-ddb-by-id"]) rmSync(join(tmpdir(), `${d}-${process.pid}`), { recursive: true, force: true });
});

describe("rollout.store: dynamodb, maxInFlight 1", () => {
  test("publishes its record; waits while the slot is held; takes it when given back, then gives it back", async () => {
    const v1 = await k.release(files("v1"), "v1");
    const env: Record<string, string | undefined> = { ...process.env, AGENT_CONFIG: k.config, NO_COLOR: "1", ...KEYS };
    for (const [key, v] of Object.entries(env)) if (v === undefined) delete env[key];
    daemon = Bun.spawn([AGENT, "run"], { env: env as Record<string, string>, stdout: "ignore", stderr: "ignore" });
    await until("converged on v1", () => status()?.current?.commit === v1 && status()?.phase === "converged" || null, 40_000);
    let rec: any = null;
    for (let i = 0; i < 100 && rec?.commit !== v1; i++) { rec = (await table().read(P)).nodes.find((n) => n.instance === SELF); await Bun.sleep(100); }
    expect(rec).toMatchObject({ commit: v1, state: "converged" });

    expect(await table().take(P, 0, "i-peer", null)).toBe(true);
    const v2 = await k.release(files("v2"), "v2", "rollout: { waves: [100%], bake: 2s, store: dynamodb, maxInFlight: 1, lease: 10m }\n");
    await until("held for the slot", () => (status()?.notices ?? []).some((n: string) => n.includes("waiting for a deploy slot (maxInFlight 1, held by i-peer)")) || null, 40_000);
    expect(status().current.commit).toBe(v1);

    await table().release(P, 0, "i-peer");
    await until("converged on v2", () => status()?.current?.commit === v2 && status()?.phase === "converged" || null, 40_000);
    let slots = (await table().read(P)).slots;
    for (let i = 0; i < 100 && slots[0]?.holder; i++) { await Bun.sleep(100); slots = (await table().read(P)).slots; }
    expect(slots).toEqual([{ slot: 0, holder: null, version: 4 }]);   // i-peer took (1) and gave back (2); SELF took (3) and gave back (4)
    expect((await table().read(P)).nodes.find((n) => n.instance === SELF)).toMatchObject({ commit: v2, state: "converged" });
  }, 150_000);

  test("a record left by an instance terminated mid-deploy: checked with EC2 once silent for a lease, deleted; the node moves", async () => {
    await table().publish(P, { instance: DEAD, commit: null, state: "deploying", failed: null, since: null, version: "1" });
    ec2.calls.length = 0;
    const v3 = await k.release(files("v3"), "v3", "rollout: { waves: [100%], bake: 2s, store: dynamodb, maxInFlight: 1, lease: 2s }\n");
    await until("converged on v3", () => status()?.current?.commit === v3 && status()?.phase === "converged" || null, 40_000);
    expect((await table().read(P)).nodes.map((n) => n.instance).sort()).toEqual([SELF, "i-peer"].sort());   // DEAD's record deleted
    const checks = ec2.calls.filter((c) => c.action === "DescribeInstances" && c.params["Filter.1.Name"] === "instance-id");
    expect(checks.map((c) => c.params["Filter.1.Value.1"])).toEqual([DEAD]);
  }, 60_000);
});
