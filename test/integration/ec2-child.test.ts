// The daemon's EC2 (cloud/ec2-child.ts): every call of the Ec2 interface runs in `agent _ec2` on the
// real SDK client against the stand-in; one child answers the calls that follow each other, its
// errors keep their reason and retry class, and it exits after its idle time.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createChildEc2, runningEc2Children } from "../../agent/cloud/ec2-child.ts";
import { AgentError } from "../../agent/core/errors.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { startEc2, type Ec2Server } from "../servers/ec2.ts";

const ZONE = "us-east-1a", ME = "i-0000000000000000a", VOL = "vol-0000000000000000a";
let dir: string, ec2s: Ec2Server;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "agent-ec2-child-"));
  ec2s = await startEc2({ dataDir: join(dir, "d"), byIdDir: join(dir, "b"), loopDevices: false });
  ec2s.addInstance({ id: ME, zone: ZONE, tags: { Role: "web", Environment: "staging" } });
  ec2s.addAddress({ allocationId: "eipalloc-000000a1", publicIp: "203.0.113.1" });
  ec2s.addVolume({ id: VOL, zone: ZONE, sizeMiB: 8 });
  // The child takes the SDK's default credential chain, as the daemon does: here, the environment.
  process.env.AWS_ACCESS_KEY_ID = "AKIDCHILD";
  process.env.AWS_SECRET_ACCESS_KEY = "x";
});
afterAll(async () => {
  await ec2s.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("the calls of a converge go to one child, on the real SDK client, signed with the default chain's keys", async () => {
  const ec2 = createChildEc2({ region: "us-east-1", endpoint: ec2s.url, maxAttempts: 2 }, memoryLogger());
  expect(await ec2.describeInstanceTags(ME)).toMatchObject({ Role: "web" });
  const [a] = await ec2.describeAddresses(["eipalloc-000000a1"]);
  expect(a).toMatchObject({ publicIp: "203.0.113.1", instanceId: null });
  expect((await ec2.associateAddress("eipalloc-000000a1", ME)).associationId).toStartWith("eipassoc-");
  expect((await ec2.describeVolumes({ ids: [VOL] }))[0]).toMatchObject({ volumeId: VOL, zone: ZONE, state: "available" });
  await ec2.createTags(ME, { "agent:state": "converged" });
  const peers = await ec2.describePeers({ key: "Environment", value: "staging" }, "Role");
  expect(peers.map((p) => [p.id, p.role, p.tags["agent:state"]])).toEqual([[ME, "web", "converged"]]);
  expect(typeof peers[0]!.launchedAt).toBe("number");
  expect(ec2.worker.children).toBe(1);
  expect(ec2.worker.requests).toBe(6);
  expect(ec2s.calls.at(-1)!.accessKeyId).toBe("AKIDCHILD");
  ec2.worker.release();
  while (runningEc2Children().length) await Bun.sleep(10);
});

test("an EC2 error crosses the pipe as the AgentError of cloud/ec2.ts: its reason and retry class", async () => {
  const ec2 = createChildEc2({ region: "us-east-1", endpoint: ec2s.url, maxAttempts: 1 }, memoryLogger());
  const e = await ec2.describeVolumes({ ids: ["vol-00000000000000bad"] }).catch((x) => x);
  expect(e).toBeInstanceOf(AgentError);
  expect(e).toMatchObject({ reason: "VolumeNotFound", retry: { kind: "terminal" } });
  expect(e.message).toContain("check the volume id");
  // the same child answers the next call
  expect((await ec2.describeVolumes({ ids: [VOL] })).length).toBe(1);
  expect(ec2.worker.children).toBe(1);
  ec2.worker.release();
});

test("a child that dies mid-call is an Ec2ChildFailed error, and the next call starts a new one", async () => {
  // An endpoint that never answers holds the call in the child.
  const hang = Bun.serve({ port: 0, fetch: () => new Promise<Response>(() => {}) });
  const ec2 = createChildEc2({ region: "us-east-1", endpoint: `http://127.0.0.1:${hang.port}`, maxAttempts: 1 }, memoryLogger());
  const call = ec2.describeInstanceTags(ME).catch((x) => x);
  while (!runningEc2Children().length) await Bun.sleep(10);
  await Bun.sleep(300);
  process.kill(runningEc2Children()[0]!, "SIGKILL");
  const e = await call;
  expect(e).toBeInstanceOf(AgentError);
  expect(e).toMatchObject({ reason: "Ec2ChildFailed" });
  expect(e.message).toContain("agent _ec2");
  const next = createChildEc2({ region: "us-east-1", endpoint: ec2s.url }, memoryLogger());
  expect(await next.describeInstanceTags(ME)).toMatchObject({ Role: "web" });
  next.worker.release();
  void hang.stop(true);
});

test("the child exits by itself after its idle time", async () => {
  const ec2 = createChildEc2({ region: "us-east-1", endpoint: ec2s.url }, memoryLogger());
  (ec2.worker as unknown as { o: { idleMs: number } }).o.idleMs = 200;
  await ec2.describeInstanceTags(ME);
  expect(runningEc2Children().length).toBe(1);
  while (runningEc2Children().length) await Bun.sleep(20);
  expect(ec2.worker.children).toBe(1);
});
