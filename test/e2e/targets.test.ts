// The compiled binary and the ELBv2 stand-in (real SDK inside the binary): the node registers in
// its role's target group once healthy, makes no ELBv2 call on idle ticks, keeps the
// registration through a rollback, leaves the group (after draining) when the binding is
// removed, reports a deregistration delay longer than its drain, and `agent pause --drain`
// deregisters and waits; `agent resume` registers it again.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startElbv2, type Elbv2Server } from "../servers/elbv2.ts";
import { AGENT, APP, makeKit, role, untilStatus, type Kit } from "./kit.ts";

const ID = "i-0e2e00000000000e1";
const ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0e2e0e2e0e2e0e2e";
const bound = (drain = "2s") => `roles:\n  web:\n    targetGroups:\n      - { arn: "${ARN}", port: 8080, drain: ${drain} }\n`;

let elb: Elbv2Server, k: Kit;
const ENV = { AWS_ACCESS_KEY_ID: "AKIDE2EELB", AWS_SECRET_ACCESS_KEY: "x", AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined };

beforeAll(async () => {
  elb = await startElbv2();
  elb.addGroup({ arn: ARN, port: 8080, delaySeconds: 300 });
  elb.drainMs = 600;
  k = await makeKit("targets", role(), {
    env: ENV,
    config: [`identity: { role: web, environment: staging, instanceId: ${ID}, region: us-east-1 }`, `aws: { endpoints: { elbv2: "${elb.url}" } }`],
  });
});
afterAll(async () => {
  await k?.stop();
  await elb?.stop();
});

const files = (version: string, over: Record<string, string | null> = {}) => ({ VERSION: `${version}\n`, "app.ts": APP, "roles/web.yaml": role(), sick: null, ...over });
const target = () => elb.groups.get(ARN)!.targets.get(`${ID}:8080`) ?? null;
const actions = (from: number) => elb.calls.slice(from).map((c) => c.action);
const stateJson = () => JSON.parse(readFileSync(join(k.state, "state.json"), "utf8"));
const daemonEnv = () => Object.fromEntries(Object.entries({ ...process.env, AGENT_CONFIG: k.config, NO_COLOR: "1", ...ENV })
  .filter((e): e is [string, string] => e[1] !== undefined));
const resource = (s: any) => s.resources.find((r: any) => r.ref === "target-group/web");

describe("target groups", () => {
  test("registers once healthy, with the group's port", async () => {
    await k.release(files("v1"), "v1", bound());
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect(target()).toMatchObject({ id: ID, port: 8080, state: "healthy" });
    expect(actions(0)).toEqual(["RegisterTargets"]);
    expect(resource(k.status())).toMatchObject({ ready: true, reason: "Registered" });
    expect(stateJson().targets[ARN]).toMatchObject({ port: 8080, state: "registered" });
  });

  test("an idle tick makes no ELBv2 call", async () => {
    const before = elb.calls.length;
    expect((await k.agent(["once"])).code).toBe(0);
    expect(actions(before)).toEqual([]);
  });

  test("a rollback keeps the registration", async () => {
    const before = elb.calls.length;
    await k.release(files("v2", { sick: "1" }), "v2 sick", bound());
    const r = await k.agent(["once"]);
    expect(r.code).not.toBe(0);
    expect(k.status().badCommits.length).toBe(1);
    expect(actions(before)).toEqual([]);
    expect(target()).toMatchObject({ state: "healthy" });
  });

  test("a stop-then-start cutover without a front leaves the group first, then registers again once healthy", async () => {
    const before = elb.calls.length;
    const singleton = role().replace("    stop: { timeout: 3s }\n", "    stop: { timeout: 3s }\n    overlap: false\n");
    expect(singleton).toContain("overlap: false");
    await k.release(files("v2b", { "roles/web.yaml": singleton }), "v2b stop-then-start", bound());
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    const seen = actions(before);
    expect(seen.indexOf("DeregisterTargets")).toBeGreaterThanOrEqual(0);
    expect(seen.lastIndexOf("RegisterTargets")).toBeGreaterThan(seen.indexOf("DeregisterTargets"));
    expect(seen.at(-1)).toBe("RegisterTargets");
    expect(target()).toMatchObject({ state: "healthy" });
    expect(stateJson().targets[ARN]).toMatchObject({ state: "registered" });
  });

  test("the binding removed: deregistered after draining; a longer deregistration delay is reported", async () => {
    const before = elb.calls.length;
    await k.release(files("v3"), "v3");
    const r = await k.agent(["once"]);
    expect(r.code).toBe(0);
    expect(actions(before)).toContain("DeregisterTargets");
    expect(actions(before)).toContain("DescribeTargetGroupAttributes");
    expect(actions(before).at(-1)).toBe("DescribeTargetHealth");
    expect(target()).toBeNull();                        // drained: gone from the group
    expect(stateJson().targets ?? {}).toEqual({});
    expect(k.status().notices.join("\n")).toContain("deregistration delay (300s) is longer than drain (2s)");
    const idle = elb.calls.length;
    expect((await k.agent(["once"])).code).toBe(0);
    expect(actions(idle)).toEqual([]);
  });

  test("agent pause --drain deregisters and waits; agent resume registers again", async () => {
    await k.release(files("v4"), "v4", bound("5s"));
    const daemon = Bun.spawn([AGENT, "run"], { env: daemonEnv(), stdout: "ignore", stderr: "ignore" });
    try {
      await untilStatus(k, "registered", (s) => resource(s)?.reason === "Registered" && s.phase === "converged", { ms: 60_000 });
      const before = elb.calls.length;
      const r = await k.agent(["pause", "--drain"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("Deregistered from the target groups and drained");
      expect(actions(before)).toContain("DeregisterTargets");
      expect(target()).toBeNull();                                // it answered once draining was over
      expect(stateJson()).toMatchObject({ paused: true });
      expect(stateJson().targets ?? {}).toEqual({});
      expect((await k.agent(["resume"])).code).toBe(0);
      await untilStatus(k, "registered again", (s) => resource(s)?.reason === "Registered" && s.phase === "converged", { ms: 60_000 });
      expect(target()).toMatchObject({ state: "healthy" });
    } finally {
      daemon.kill("SIGTERM");
      await daemon.exited;
    }
  });
});
