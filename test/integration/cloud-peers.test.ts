// describePeers on the real EC2 client against the stand-in: one filtered, paginated read of the
// environment (pending and running only), fields checked, RequestLimitExceeded as a retry-after error.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEc2, type Ec2 } from "../../agent/cloud/ec2.ts";
import { AgentError } from "../../agent/core/errors.ts";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";
import { EC2_LIMITS } from "../servers/ec2-limits.ts";

let dir: string;
let server: Ec2Server;
const client = (key = "AKIDPEERA"): Ec2 => createEc2({ region: "us-east-1", endpoint: server.url, credentials: { accessKeyId: key, secretAccessKey: "s" } });
const ENV = { key: "Environment", value: "production" };
const C = "c".repeat(40);
const err = (p: Promise<unknown>) => p.then(() => { throw new Error("expected a failure"); }, (e) => e as AgentError);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cloud-peers-"));
  server = await startEc2({ dataDir: join(dir, "data"), byIdDir: join(dir, "by-id"), loopDevices: false });
  for (let n = 0; n < 2300; n++) {
    const env = n % 10 === 9 ? "staging" : "production";
    server.addInstance({
      id: `i-${n.toString(16).padStart(8, "0")}`, zone: "us-east-1a",
      tags: { Environment: env, Role: n % 3 ? "web" : "db", Name: `node-${n}`, "agent:commit": C, "agent:state": "converged", "agent:version": "0.2.0" },
      state: n === 5 ? "terminated" : n === 6 ? "pending" : n === 7 ? "stopped" : "running",
      launchTime: new Date(Date.UTC(2026, 11, 1)),
    });
  }
});
afterAll(async () => { await server.stop(); rmSync(dir, { recursive: true, force: true }); });
beforeEach(() => { server.limits = structuredClone(EC2_LIMITS); server.staleTagsMs = 0; server.calls.length = 0; });

describe("describePeers", () => {
  test("every page of one filtered DescribeInstances: the environment's pending and running instances, agent:* tags and role", async () => {
    const peers = await client().describePeers(ENV, "Role");
    const want = [...server.instances.values()].filter((i) => i.tags.Environment === "production" && ["pending", "running"].includes(i.state ?? "running"));
    expect(peers.map((p) => p.id)).toEqual(want.map((i) => i.id));
    expect(peers.length).toBe(2300 - 230 - 2);
    expect(peers[0]).toEqual({ id: "i-00000000", state: "running", launchedAt: Date.UTC(2026, 11, 1), role: "db",
      tags: { "agent:commit": C, "agent:state": "converged", "agent:version": "0.2.0" }, zone: "us-east-1a" });
    expect(peers.find((p) => p.id === "i-00000006")!.state).toBe("pending");
    const calls = server.calls.filter((c) => c.action === "DescribeInstances");
    expect(calls).toHaveLength(3);   // 2068 peers, 1000 a page
    expect(calls[0]!.params).toMatchObject({ "Filter.1.Name": "tag:Environment", "Filter.1.Value.1": "production",
      "Filter.2.Name": "instance-state-name", "Filter.2.Value.1": "pending", "Filter.2.Value.2": "running", MaxResults: "1000" });
  });
  test("an environment with no instances is an empty list", async () => {
    expect(await client().describePeers({ key: "Environment", value: "nowhere" }, "Role")).toEqual([]);
  });
  test("an empty 200 is Ec2BadAnswer naming the missing field, not an empty fleet", async () => {
    server.faults.empty200 = 1;
    const e = await err(client().describePeers(ENV, "Role"));
    expect(e).toBeInstanceOf(AgentError);
    expect(e.reason).toBe("Ec2BadAnswer");
    expect(e.message).toContain("Reservations");
  });
  test("RequestLimitExceeded: one call, no SDK retries, an Ec2Throttled error to retry after the given delay", async () => {
    server.limits.describe = { burst: 1, perSecond: 0.001 };
    await client().describeInstanceTags("i-00000000");   // spends the only token
    const before = server.calls.length;
    const e = await err(client().describePeers(ENV, "Role", 45_000));
    expect(e.reason).toBe("Ec2Throttled");
    expect(e.retry).toEqual({ kind: "after", ms: 45_000 });
    expect(e.message).toContain("45 s");
    expect(server.calls.length - before).toBe(1);
  });
  test("a stale read shows another node's old tags; its own write at once", async () => {
    server.staleTagsMs = 60_000;
    await client("AKIDPEERA").createTags("i-00000001", { "agent:state": "deploying" });
    const mine = await client("AKIDPEERA").describePeers(ENV, "Role");
    const theirs = await client("AKIDPEERB").describePeers(ENV, "Role");
    expect(mine.find((p) => p.id === "i-00000001")!.tags["agent:state"]).toBe("deploying");
    expect(theirs.find((p) => p.id === "i-00000001")!.tags["agent:state"]).toBe("converged");
  });
});

describe("instanceStates (the DynamoDB store's liveness check)", () => {
  test("DescribeInstances filtered by instance-id, 200 ids a call, any state; an id EC2 does not know is absent", async () => {
    const ids = [...Array(450).keys()].map((n) => `i-${n.toString(16).padStart(8, "0")}`).concat("i-ffffffff");
    const states = await client().instanceStates(ids);
    expect(Object.keys(states)).toHaveLength(450);
    expect(states).toMatchObject({ "i-00000004": "running", "i-00000005": "terminated", "i-00000006": "pending", "i-00000007": "stopped" });
    expect(states["i-ffffffff"]).toBeUndefined();
    const calls = server.calls.filter((c) => c.action === "DescribeInstances");
    expect(calls).toHaveLength(3);   // 451 ids: 200 + 200 + 51
    expect(calls[0]!.params).toMatchObject({ "Filter.1.Name": "instance-id", "Filter.1.Value.200": ids[199] });
    expect(calls[0]!.params["Filter.1.Value.201"]).toBeUndefined();
    expect(calls[0]!.params["Filter.2.Name"]).toBeUndefined();   // no state filter: a terminated peer must be seen as such
  });
  test("RequestLimitExceeded: an Ec2Throttled error to retry after the given delay, no SDK retries", async () => {
    server.limits.describe = { burst: 1, perSecond: 0.001 };
    await client().describeInstanceTags("i-00000000");
    const before = server.calls.length;
    const e = await err(client().instanceStates(["i-00000001"], 30_000));
    expect(e.reason).toBe("Ec2Throttled");
    expect(e.retry).toEqual({ kind: "after", ms: 30_000 });
    expect(server.calls.length - before).toBe(1);
  });
});
