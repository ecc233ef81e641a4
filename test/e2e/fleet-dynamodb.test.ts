// rollout.store: dynamodb on the compiled agent: a daemon with a static identity publishes its
// rollout record into a dynalite table through the real SDK (loaded lazily in the binary), and with
// maxInFlight: 1 it stays on v1 while another node holds the only deploy slot; once the slot is
// given back it takes it, moves to v2, and gives it back converged.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createRolloutTable, partitionOf } from "../../agent/cloud/dynamodb.ts";
import { createRolloutTableFor, startDynamoDb, type DynamoDbServer } from "../servers/dynamodb.ts";
import { AGENT, APP, makeKit, role, until, type Kit } from "./kit.ts";

const TABLE = "agent-rollout", P = partitionOf("staging", "web");
const KEYS = { AWS_ACCESS_KEY_ID: "a", AWS_SECRET_ACCESS_KEY: "s", AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined };
let k: Kit, db: DynamoDbServer, daemon: Subprocess | null = null;
const table = () => createRolloutTable({ region: "local", table: TABLE, endpoint: db.url, credentials: { accessKeyId: "a", secretAccessKey: "s" } });
const status = (): any => { try { return JSON.parse(readFileSync(join(k.state, "status.json"), "utf8")); } catch { return null; } };
const ROLE = role().replace("deadline: 4s", "deadline: 2s");
const files = (v: string) => ({ VERSION: `${v}\n`, "app.ts": APP, "roles/web.yaml": ROLE });

beforeAll(async () => {
  db = await startDynamoDb();
  await createRolloutTableFor(db.url, TABLE);
  k = await makeKit("fleet-ddb", ROLE, {
    env: KEYS,
    config: ["identity: { role: web, environment: staging, instanceId: e2e-1 }", `aws: { endpoints: { dynamodb: "${db.url}" } }`, `rollout: { table: ${TABLE} }`],
  });
  await table().publish(P, { instance: "i-peer", commit: null, state: "converged", failed: null, since: null, version: "1" });
}, 60_000);

afterAll(async () => {
  daemon?.kill("SIGTERM");
  await daemon?.exited;
  await k?.stop();
  await db?.stop();
});

describe("rollout.store: dynamodb, maxInFlight 1", () => {
  test("publishes its record; waits while the slot is held; takes it when given back, then gives it back", async () => {
    const v1 = await k.release(files("v1"), "v1");
    const env: Record<string, string | undefined> = { ...process.env, AGENT_CONFIG: k.config, NO_COLOR: "1", ...KEYS };
    for (const [key, v] of Object.entries(env)) if (v === undefined) delete env[key];
    daemon = Bun.spawn([AGENT, "run"], { env: env as Record<string, string>, stdout: "ignore", stderr: "ignore" });
    await until("converged on v1", () => status()?.current?.commit === v1 && status()?.phase === "converged" || null, 40_000);
    let rec: any = null;
    for (let i = 0; i < 100 && rec?.commit !== v1; i++) { rec = (await table().read(P)).nodes.find((n) => n.instance === "e2e-1"); await Bun.sleep(100); }
    expect(rec).toMatchObject({ commit: v1, state: "converged" });

    expect(await table().take(P, 0, "i-peer", null)).toBe(true);
    const v2 = await k.release(files("v2"), "v2", "rollout: { waves: [100%], bake: 2s, store: dynamodb, maxInFlight: 1, lease: 10m }\n");
    await until("held for the slot", () => (status()?.notices ?? []).some((n: string) => n.includes("waiting for a deploy slot (maxInFlight 1, held by i-peer)")) || null, 40_000);
    expect(status().current.commit).toBe(v1);

    await table().release(P, 0, "i-peer");
    await until("converged on v2", () => status()?.current?.commit === v2 && status()?.phase === "converged" || null, 40_000);
    let slots = (await table().read(P)).slots;
    for (let i = 0; i < 100 && slots[0]?.holder; i++) { await Bun.sleep(100); slots = (await table().read(P)).slots; }
    expect(slots).toEqual([{ slot: 0, holder: null, version: 4 }]);   // i-peer took (1) and gave back (2); e2e-1 took (3) and gave back (4)
    expect((await table().read(P)).nodes.find((n) => n.instance === "e2e-1")).toMatchObject({ commit: v2, state: "converged" });
  }, 150_000);
});
