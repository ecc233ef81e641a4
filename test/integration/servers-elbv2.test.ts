// The ELBv2 stand-in, proven with the real @aws-sdk/client-elastic-load-balancing-v2 and the
// agent's own client (agent/cloud/elbv2.ts): every action, draining with a delay, throttling
// retried, 5xx, unknown groups.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import {
  DeregisterTargetsCommand, DescribeTargetGroupAttributesCommand, DescribeTargetGroupsCommand, DescribeTargetHealthCommand,
  ElasticLoadBalancingV2Client, RegisterTargetsCommand,
} from "@aws-sdk/client-elastic-load-balancing-v2";
import { startElbv2, type Elbv2Server } from "../servers/elbv2.ts";
import { createElbv2 } from "../../agent/cloud/elbv2.ts";
import { AgentError } from "../../agent/core/errors.ts";

const ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef";
const credentials = { accessKeyId: "AKIDELBTEST", secretAccessKey: "secret" };
let elb: Elbv2Server;
const sdk = (maxAttempts = 1) => new ElasticLoadBalancingV2Client({ region: "us-east-1", endpoint: elb.url, credentials, maxAttempts });
const state = async (id: string, port: number) => (await sdk().send(new DescribeTargetHealthCommand({ TargetGroupArn: ARN, Targets: [{ Id: id, Port: port }] })))
  .TargetHealthDescriptions?.[0]?.TargetHealth?.State;

beforeAll(async () => { elb = await startElbv2(); });
afterAll(async () => { await elb.stop(); });
beforeEach(() => { elb.groups.clear(); elb.addGroup({ arn: ARN, port: 8080, delaySeconds: 300 }); elb.drainMs = 0; elb.calls.length = 0; Object.assign(elb.faults, { throttle: 0, fail5xx: 0 }); });

describe("elbv2 stand-in with the real SDK", () => {
  test("register, describe, deregister", async () => {
    await sdk().send(new RegisterTargetsCommand({ TargetGroupArn: ARN, Targets: [{ Id: "i-0aaa", Port: 8080 }] }));
    expect(await state("i-0aaa", 8080)).toBe("healthy");
    expect(await state("i-0bbb", 8080)).toBe("unused");
    const all = await sdk().send(new DescribeTargetHealthCommand({ TargetGroupArn: ARN }));
    expect(all.TargetHealthDescriptions?.map((d) => d.Target?.Id)).toEqual(["i-0aaa"]);
    await sdk().send(new DeregisterTargetsCommand({ TargetGroupArn: ARN, Targets: [{ Id: "i-0aaa", Port: 8080 }] }));
    expect(await state("i-0aaa", 8080)).toBe("unused");
    expect(elb.calls.map((c) => c.action)).toEqual(["RegisterTargets", "DescribeTargetHealth", "DescribeTargetHealth", "DescribeTargetHealth", "DeregisterTargets", "DescribeTargetHealth"]);
    expect(elb.calls[0]!.params["Targets.member.1.Id"]).toBe("i-0aaa");
  });

  test("a deregistered target drains for drainMs, then is gone", async () => {
    elb.drainMs = 300;
    await sdk().send(new RegisterTargetsCommand({ TargetGroupArn: ARN, Targets: [{ Id: "i-0aaa", Port: 8080 }] }));
    await sdk().send(new DeregisterTargetsCommand({ TargetGroupArn: ARN, Targets: [{ Id: "i-0aaa", Port: 8080 }] }));
    expect(await state("i-0aaa", 8080)).toBe("draining");
    await Bun.sleep(350);
    expect(await state("i-0aaa", 8080)).toBe("unused");
  });

  test("target groups and their attributes", async () => {
    const g = await sdk().send(new DescribeTargetGroupsCommand({ TargetGroupArns: [ARN] }));
    expect(g.TargetGroups?.[0]).toMatchObject({ TargetGroupArn: ARN, TargetGroupName: "web", Port: 8080 });
    const a = await sdk().send(new DescribeTargetGroupAttributesCommand({ TargetGroupArn: ARN }));
    expect(a.Attributes?.find((x) => x.Key === "deregistration_delay.timeout_seconds")?.Value).toBe("300");
  });

  test("an unknown group is TargetGroupNotFound", async () => {
    const e = await sdk().send(new DescribeTargetHealthCommand({ TargetGroupArn: ARN.replace("web", "nope") })).then(() => null, (x) => x as Error);
    expect(e?.name).toBe("TargetGroupNotFoundException");
    const mine = await createElbv2({ region: "us-east-1", endpoint: elb.url, credentials, maxAttempts: 1 }).deregistrationDelay(ARN.replace("web", "nope")).then(() => null, (x) => x);
    expect(mine).toBeInstanceOf(AgentError);
    expect((mine as AgentError).reason).toBe("TargetGroupNotFound");
  });

  test("throttling is retried by the SDK", async () => {
    elb.faults.throttle = 2;
    await sdk(4).send(new RegisterTargetsCommand({ TargetGroupArn: ARN, Targets: [{ Id: "i-0aaa", Port: 8080 }] }));
    expect(elb.calls.map((c) => c.status)).toEqual([400, 400, 200]);
    elb.faults.throttle = 1;
    const e = await sdk(1).send(new DescribeTargetHealthCommand({ TargetGroupArn: ARN })).then(() => null, (x) => x as Error);
    expect(e?.name).toBe("Throttling");
  });

  test("5xx: retried, and after the retries an Elbv2Unavailable AgentError", async () => {
    elb.faults.fail5xx = 1;
    const agent = createElbv2({ region: "us-east-1", endpoint: elb.url, credentials, maxAttempts: 2 });
    await agent.registerTarget(ARN, { id: "i-0aaa", port: 8080 });
    expect(await agent.targetState(ARN, { id: "i-0aaa", port: 8080 })).toBe("healthy");
    elb.faults.fail5xx = 5;
    const e = await agent.deregisterTarget(ARN, { id: "i-0aaa", port: 8080 }).then(() => null, (x) => x as AgentError);
    expect(e?.reason).toBe("Elbv2Unavailable");
  });

  test("the agent's client: delay and draining", async () => {
    elb.drainMs = 10_000;
    const agent = createElbv2({ region: "us-east-1", endpoint: elb.url, credentials, maxAttempts: 1 });
    expect(await agent.deregistrationDelay(ARN)).toBe(300);
    await agent.registerTarget(ARN, { id: "i-0aaa", port: 8080 });
    await agent.deregisterTarget(ARN, { id: "i-0aaa", port: 8080 });
    expect(await agent.targetState(ARN, { id: "i-0aaa", port: 8080 })).toBe("draining");
  });
});
