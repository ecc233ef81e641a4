// The target group effects (agent/converge/targets.ts) on the agent's ELBv2 client against the
// stand-in: the record in state.json, the wait for draining bounded by drain, the longer
// deregistration delay reported, throttling and 5xx as not-ready conditions (never thrown).
import { afterAll, beforeAll, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startElbv2, type Elbv2Server } from "../servers/elbv2.ts";
import { createElbv2 } from "../../agent/cloud/elbv2.ts";
import { convergeTargets, drainTargets, type TargetsContext } from "../../agent/converge/targets.ts";
import { systemClock } from "../../agent/core/clock.ts";
import { memoryLogger } from "../../agent/core/log.ts";
import { StateStore } from "../../agent/state/store.ts";

const ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
const ID = "i-0aaa";
let elb: Elbv2Server, dir: string, ctx: TargetsContext;
const groups = (drainMs: number) => [{ arn: ARN, port: 8080, drainMs }];

beforeAll(async () => { elb = await startElbv2(); dir = mkdtempSync(join(tmpdir(), "targets-")); });
afterAll(async () => { await elb.stop(); rmSync(dir, { recursive: true, force: true }); });
beforeEach(() => {
  elb.groups.clear(); elb.addGroup({ arn: ARN, port: 8080, delaySeconds: 300 }); elb.calls.length = 0; elb.drainMs = 0;
  Object.assign(elb.faults, { throttle: 0, fail5xx: 0 });
  ctx = { elbv2: createElbv2({ region: "us-east-1", endpoint: elb.url, credentials: { accessKeyId: "AKIDT", secretAccessKey: "x" }, maxAttempts: 2 }),
    store: new StateStore(join(mkdtempSync(join(dir, "s-")), "state.json")), clock: systemClock, log: memoryLogger(), delays: new Map(), pollMs: 50 };
});

test("register once healthy, then nothing; the record is in state.json", async () => {
  const out = await convergeTargets(ctx, { groups: groups(1000), instanceId: ID, healthy: true, drain: false });
  expect(out.conditions).toMatchObject([{ ref: "target-group/web", ready: true, reason: "Registered" }]);
  expect(ctx.store.get().targets?.[ARN]).toMatchObject({ port: 8080, state: "registered" });
  const n = elb.calls.length;
  await convergeTargets(ctx, { groups: groups(1000), instanceId: ID, healthy: true, drain: false });
  await convergeTargets(ctx, { groups: groups(1000), instanceId: ID, healthy: false, drain: false });
  expect(elb.calls.length).toBe(n);
});

test("drain waits until the group no longer drains the node; the longer delay is reported", async () => {
  await convergeTargets(ctx, { groups: groups(5000), instanceId: ID, healthy: true, drain: false });
  elb.drainMs = 300;
  const out = await drainTargets(ctx, ID);
  expect(elb.groups.get(ARN)!.targets.size).toBe(0);         // it returned only once draining was over
  expect(out.notices.join()).toContain("deregistration delay (300s) is longer than drain (5s)");
  expect(ctx.store.get().targets).toEqual({});
  expect(elb.calls.filter((c) => c.action === "DescribeTargetHealth").length).toBeGreaterThan(1);
});

test("the wait is bounded by drain: the node is taken away anyway, and says so", async () => {
  await convergeTargets(ctx, { groups: groups(200), instanceId: ID, healthy: true, drain: false });
  elb.drainMs = 60_000;
  const out = await drainTargets(ctx, ID);
  expect(elb.groups.get(ARN)!.targets.get(`${ID}:8080`)?.state).toBe("draining");
  expect(out.notices.join()).toContain("still drains");
  expect(ctx.store.get().targets).toEqual({});
});

test("throttling is retried; 5xx past the retries is a not-ready condition, and the next pass registers", async () => {
  elb.faults.throttle = 1;
  const a = await convergeTargets(ctx, { groups: groups(1000), instanceId: ID, healthy: true, drain: false });
  expect(a.conditions[0]).toMatchObject({ ready: true, reason: "Registered" });
  await drainTargets(ctx, ID);
  elb.faults.fail5xx = 2;
  const b = await convergeTargets(ctx, { groups: groups(1000), instanceId: ID, healthy: true, drain: false });
  expect(b.conditions[0]).toMatchObject({ ready: false, reason: "Elbv2Unavailable" });
  const c = await convergeTargets(ctx, { groups: groups(1000), instanceId: ID, healthy: true, drain: false });
  expect(c.conditions[0]).toMatchObject({ ready: true, reason: "Registered" });
});

test("a group that does not exist: TargetGroupNotFound, not ready", async () => {
  const other = ARN.replace("/web/", "/gone/");
  const out = await convergeTargets(ctx, { groups: [{ arn: other, port: 80, drainMs: 1000 }], instanceId: ID, healthy: true, drain: false });
  expect(out.conditions[0]).toMatchObject({ ref: "target-group/gone", ready: false, reason: "TargetGroupNotFound" });
});
