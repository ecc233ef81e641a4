// The few ELBv2 calls the agent makes (target registration), on the real SDK client, loaded at the
// first call. Every failure becomes an AgentError whose reason says what it was and what to do.
import type { ElasticLoadBalancingV2Client } from "@aws-sdk/client-elastic-load-balancing-v2";
import type * as Elbv2Sdk from "@aws-sdk/client-elastic-load-balancing-v2";
import { AgentError, errorMessage } from "../core/errors.ts";
import { loadElbv2Sdk } from "./sdk.ts";

export interface Target { id: string; port: number }

export interface Elbv2 {
  registerTarget(groupArn: string, t: Target): Promise<void>;
  deregisterTarget(groupArn: string, t: Target): Promise<void>;
  /** The target's state in the group: initial | healthy | unhealthy | unused | draining | unavailable. */
  targetState(groupArn: string, t: Target): Promise<string>;
  /** The group's deregistration_delay.timeout_seconds (ELB's default 300). */
  deregistrationDelay(groupArn: string): Promise<number>;
}

export interface Elbv2Options {
  region: string;
  endpoint?: string | null;
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Total tries per call, including the first (default 4). Throttling and 5xx are retried with backoff. */
  maxAttempts?: number;
}

const THROTTLE = new Set(["Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"]);
const CLIENT: Record<string, { reason: string; hint: string }> = {
  TargetGroupNotFoundException: { reason: "TargetGroupNotFound", hint: "check the target group ARN under roles.<role>.targetGroups and the region" },
  TargetGroupNotFound: { reason: "TargetGroupNotFound", hint: "check the target group ARN under roles.<role>.targetGroups and the region" },
  InvalidTargetException: { reason: "TargetInvalid", hint: "the group must be of target type instance, in the instance's VPC" },
  InvalidTarget: { reason: "TargetInvalid", hint: "the group must be of target type instance, in the instance's VPC" },
  AccessDenied: { reason: "Elbv2Unauthorized", hint: "grant the instance role the target group statement in docs/aws.md" },
  AccessDeniedException: { reason: "Elbv2Unauthorized", hint: "grant the instance role the target group statement in docs/aws.md" },
};

/** Map an SDK failure (after its retries) to an AgentError. Exported for tests. */
export function mapElbv2Error(action: string, e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } };
  const code = err.name ?? "Unknown";
  const status = err.$metadata?.httpStatusCode;
  const detail = `${code}: ${errorMessage(e)}`;
  if (THROTTLE.has(code) || status === 429) return new AgentError("Elbv2Throttled", `ELBv2 ${action} was throttled after retries (${detail}); retrying on the next tick`, { kind: "transient" }, { cause: e });
  const known = CLIENT[code];
  if (known) return new AgentError(known.reason, `ELBv2 ${action}: ${errorMessage(e)} (${code}); ${known.hint}`, { kind: "transient" }, { cause: e });
  return new AgentError("Elbv2Unavailable", `ELBv2 ${action} failed after retries (${detail}); retrying on the next tick`, { kind: "transient" }, { cause: e });
}

export function createElbv2(opts: Elbv2Options): Elbv2 {
  let made: Promise<{ sdk: typeof Elbv2Sdk; client: ElasticLoadBalancingV2Client }> | null = null;
  const sdk = () => made ??= loadElbv2Sdk().then((sdk) => ({ sdk, client: new sdk.ElasticLoadBalancingV2Client({
    region: opts.region,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    maxAttempts: opts.maxAttempts ?? 4,
    retryMode: "standard",
  }) }));
  const send = async <T>(action: string, run: (c: ElasticLoadBalancingV2Client, m: typeof Elbv2Sdk) => Promise<T>): Promise<T> => {
    try { const { client, sdk: m } = await sdk(); return await run(client, m); } catch (e) { throw mapElbv2Error(action, e); }
  };
  const targets = (t: Target) => [{ Id: t.id, Port: t.port }];
  return {
    registerTarget: (arn, t) => send("RegisterTargets", async (c, m) => { await c.send(new m.RegisterTargetsCommand({ TargetGroupArn: arn, Targets: targets(t) })); }),
    deregisterTarget: (arn, t) => send("DeregisterTargets", async (c, m) => { await c.send(new m.DeregisterTargetsCommand({ TargetGroupArn: arn, Targets: targets(t) })); }),
    targetState: (arn, t) => send("DescribeTargetHealth", async (c, m) => {
      const r = await c.send(new m.DescribeTargetHealthCommand({ TargetGroupArn: arn, Targets: targets(t) }));
      const row = (r.TargetHealthDescriptions ?? []).find((d) => d.Target?.Id === t.id && (d.Target?.Port ?? t.port) === t.port);
      return row?.TargetHealth?.State ?? "unused";
    }),
    deregistrationDelay: (arn) => send("DescribeTargetGroupAttributes", async (c, m) => {
      const r = await c.send(new m.DescribeTargetGroupAttributesCommand({ TargetGroupArn: arn }));
      const v = (r.Attributes ?? []).find((a) => a.Key === "deregistration_delay.timeout_seconds")?.Value;
      const n = Number(v);
      return v !== undefined && Number.isFinite(n) ? n : 300;
    }),
  };
}
