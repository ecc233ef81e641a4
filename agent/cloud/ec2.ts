// The few EC2 calls the agent makes, behind a small interface, on the real SDK client.
// Every answer is checked for the fields we use (an empty 200 parses to {}); every failure
// becomes an AgentError whose reason says what it was and what to do.
import type { EC2Client, Filter, Reservation } from "@aws-sdk/client-ec2";
import type * as Ec2Sdk from "@aws-sdk/client-ec2";
import { AgentError, errorMessage } from "../core/errors.ts";
import { loadEc2Sdk } from "./sdk.ts";

export interface VolumeAttachmentInfo { instanceId: string; device: string | null; state: string }
export interface VolumeInfo {
  volumeId: string;
  zone: string;
  state: string;                       // creating | available | in-use | deleting | …
  tags: Record<string, string>;
  attachments: VolumeAttachmentInfo[];
}
/** An instance of the environment as a peer: EC2's state and launch time, its role tag and its agent:* tags. */
export interface PeerInfo { id: string; state: string; launchedAt: number | null; role: string | null; tags: Record<string, string>; zone?: string | null }
export interface AddressInfo { allocationId: string; publicIp: string; instanceId: string | null; associationId: string | null }

export interface Ec2 {
  /** The instance's tags (DescribeTags filtered by resource-id). */
  describeInstanceTags(instanceId: string): Promise<Record<string, string>>;
  /** Set tags on one resource (CreateTags overwrites values of existing keys). */
  createTags(resourceId: string, tags: Record<string, string>): Promise<void>;
  describeAddresses(allocationIds: string[]): Promise<AddressInfo[]>;
  /** AllowReassociation is always false: never take an address from another instance. */
  associateAddress(allocationId: string, instanceId: string): Promise<{ associationId: string }>;
  /** By ids, by tags, or every volume attached to one instance (filter attachment.instance-id). */
  describeVolumes(query: { ids: string[] } | { tags: Record<string, string> } | { attachedTo: string }): Promise<VolumeInfo[]>;
  attachVolume(volumeId: string, instanceId: string, device: string): Promise<{ state: string }>;
  /**
   * The pending and running instances whose tag env.key is env.value, every page of one filtered
   * DescribeInstances (1000 a page), no retry: RequestLimitExceeded is an Ec2Throttled AgentError
   * to retry after `retryAfterMs` (the caller spaces its reads, docs/fleet.md). Read-only.
   */
  describePeers(env: { key: string; value: string }, roleKey: string, retryAfterMs?: number): Promise<PeerInfo[]>;
  /**
   * EC2's state of each of these instances (instance-state-name by id): DescribeInstances filtered
   * by instance-id, 200 ids a call, every page, no retry (as describePeers). An id EC2 does not
   * know is absent from the answer. Read-only.
   */
  instanceStates(ids: readonly string[], retryAfterMs?: number): Promise<Record<string, string>>;
}

/** Values one DescribeInstances filter takes at most. */
export const FILTER_VALUES = 200;

export interface Ec2Options {
  region: string;
  /** An endpoint override (the local stand-ins); null or absent for the real service. */
  endpoint?: string | null;
  /** Absent: the SDK's default chain (environment, profile, then the instance role through IMDS). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Total tries per call, including the first (default 4). Throttling and 5xx are retried with backoff. */
  maxAttempts?: number;
}

const THROTTLE = new Set(["RequestLimitExceeded", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequestsException"]);
const CLIENT: Record<string, { reason: string; terminal: boolean; hint: string }> = {
  "VolumeInUse": { reason: "VolumeHeldByOtherInstance", terminal: false, hint: "the volume is attached to another instance; detach it there first" },
  "InvalidVolume.NotFound": { reason: "VolumeNotFound", terminal: true, hint: "check the volume id in the manifest and the region" },
  "InvalidVolume.ZoneMismatch": { reason: "VolumeWrongZone", terminal: true, hint: "an EBS volume attaches only in its own availability zone" },
  "IncorrectState": { reason: "VolumeNotAvailable", terminal: false, hint: "the volume is not available yet; it is retried on the next tick" },
  "Resource.AlreadyAssociated": { reason: "AddressAlreadyAssociated", terminal: false, hint: "another instance holds this address" },
  "InvalidAllocationID.NotFound": { reason: "AddressNotFound", terminal: true, hint: "check the allocation ids in the manifest and the region" },
  "UnauthorizedOperation": { reason: "Ec2Unauthorized", terminal: true, hint: "grant the instance role the policy in docs/aws.md" },
  "AuthFailure": { reason: "Ec2Unauthorized", terminal: true, hint: "check the instance role's credentials" },
};

/** Map an SDK failure (after its retries) to an AgentError. Exported for tests. */
export function mapEc2Error(action: string, e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  const err = e as { name?: string; $fault?: string; $metadata?: { httpStatusCode?: number } };
  const code = err.name ?? "Unknown";
  const status = err.$metadata?.httpStatusCode;
  const detail = `${code}: ${errorMessage(e)}`;
  if (THROTTLE.has(code) || status === 429) {
    return new AgentError("Ec2Throttled", `EC2 ${action} was throttled after retries (${detail}); retrying on the next tick`, { kind: "transient" }, { cause: e });
  }
  const known = CLIENT[code];
  if (known) {
    const retry = known.terminal ? { kind: "terminal" as const } : { kind: "transient" as const };
    return new AgentError(known.reason, `EC2 ${action}: ${errorMessage(e)} (${code}); ${known.hint}`, retry, { cause: e });
  }
  if (err.$fault === "client" && status !== undefined && status < 500) {
    return new AgentError("Ec2RequestRejected", `EC2 ${action} was rejected (${detail}); check the manifest's ids and the IAM policy`, { kind: "transient" }, { cause: e });
  }
  return new AgentError("Ec2Unavailable", `EC2 ${action} failed after retries (${detail}); retrying on the next tick`, { kind: "transient" }, { cause: e });
}

function need<T>(action: string, value: T | undefined | null, field: string): T {
  if (value === undefined || value === null || value === "") {
    throw new AgentError("Ec2BadAnswer", `EC2 ${action} answered without ${field}; retrying on the next tick`);
  }
  return value;
}

const tagMap = (tags: { Key?: string; Value?: string }[] | undefined) =>
  Object.fromEntries((tags ?? []).filter((t) => t.Key).map((t) => [t.Key!, t.Value ?? ""]));

/** Peers from DescribeInstances reservations, every field the planner uses checked. Exported for tests. */
export function parsePeers(reservations: Reservation[] | undefined, roleKey: string): PeerInfo[] {
  const out: PeerInfo[] = [];
  for (const r of need("DescribeInstances", reservations, "Reservations")) {
    for (const i of need("DescribeInstances", r.Instances, "Reservations.Instances")) {
      const tags = tagMap(i.Tags);
      const launched = i.LaunchTime instanceof Date ? i.LaunchTime.getTime() : NaN;
      out.push({
        id: need("DescribeInstances", i.InstanceId, "InstanceId"),
        state: need("DescribeInstances", i.State?.Name, "State.Name"),
        launchedAt: Number.isFinite(launched) ? launched : null,
        role: tags[roleKey] ?? null,
        tags: Object.fromEntries(Object.entries(tags).filter(([k]) => k.startsWith("agent:"))),
        ...(i.Placement?.AvailabilityZone ? { zone: i.Placement.AvailabilityZone } : {}),
      });
    }
  }
  return out;
}

/**
 * An Ec2 on the SDK's EC2Client with the standard retry strategy (maxAttempts, default 4). The SDK
 * is loaded, and the client made, at the first call (cloud/sdk.ts).
 */
export function createEc2(opts: Ec2Options): Ec2 {
  let made: Promise<{ sdk: typeof Ec2Sdk; client: EC2Client }> | null = null;
  const sdk = () => made ??= loadEc2Sdk().then((sdk) => ({ sdk, client: new sdk.EC2Client({
    region: opts.region,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    maxAttempts: opts.maxAttempts ?? 4,
    retryMode: "standard",
  }) }));
  const send = async <T>(action: string, run: (c: EC2Client, sdk: typeof Ec2Sdk) => Promise<T>): Promise<T> => {
    try { const { client, sdk: m } = await sdk(); return await run(client, m); } catch (e) { throw mapEc2Error(action, e); }
  };
  // Peers are read without the SDK's retries: a throttled read waits for the caller's next turn
  // instead of spending more of the account's Describe bucket.
  let once: EC2Client | null = null;
  const onceClient = (m: typeof Ec2Sdk) => once ??= new m.EC2Client({
    region: opts.region, ...(opts.endpoint ? { endpoint: opts.endpoint } : {}), ...(opts.credentials ? { credentials: opts.credentials } : {}), maxAttempts: 1,
  });
  return {
    async describeInstanceTags(instanceId) {
      const out: Record<string, string> = {};
      let token: string | undefined;
      for (let page = 0; page < 20; page++) {
        const r = await send("DescribeTags", (c, m) => c.send(new m.DescribeTagsCommand({
          Filters: [{ Name: "resource-id", Values: [instanceId] }], NextToken: token,
        })));
        need("DescribeTags", r.Tags, "Tags");
        for (const t of r.Tags!) if (t.Key && (t.ResourceId ?? instanceId) === instanceId) out[t.Key] = t.Value ?? "";
        token = r.NextToken;
        if (!token) break;
      }
      return out;
    },
    async createTags(resourceId, tags) {
      await send("CreateTags", (c, m) => c.send(new m.CreateTagsCommand({
        Resources: [resourceId], Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
      })));
    },
    async describeAddresses(allocationIds) {
      if (allocationIds.length === 0) return [];
      const r = await send("DescribeAddresses", (c, m) => c.send(new m.DescribeAddressesCommand({ AllocationIds: allocationIds })));
      return need("DescribeAddresses", r.Addresses, "Addresses").map((a) => ({
        allocationId: need("DescribeAddresses", a.AllocationId, "AllocationId"),
        publicIp: need("DescribeAddresses", a.PublicIp, "PublicIp"),
        instanceId: a.InstanceId || null,
        associationId: a.AssociationId || null,
      }));
    },
    async associateAddress(allocationId, instanceId) {
      const r = await send("AssociateAddress", (c, m) => c.send(new m.AssociateAddressCommand({
        AllocationId: allocationId, InstanceId: instanceId, AllowReassociation: false,
      })));
      return { associationId: need("AssociateAddress", r.AssociationId, "AssociationId") };
    },
    async describeVolumes(query) {
      const filters: Filter[] | undefined = "tags" in query
        ? Object.entries(query.tags).map(([k, v]) => ({ Name: `tag:${k}`, Values: [v] }))
        : "attachedTo" in query ? [{ Name: "attachment.instance-id", Values: [query.attachedTo] }] : undefined;
      const ids = "ids" in query ? query.ids : undefined;
      const out: VolumeInfo[] = [];
      let token: string | undefined;
      for (let page = 0; page < 20; page++) {
        const r = await send("DescribeVolumes", (c, m) => c.send(new m.DescribeVolumesCommand({
          VolumeIds: ids, Filters: filters, NextToken: ids ? undefined : token,
        })));
        for (const v of need("DescribeVolumes", r.Volumes, "Volumes")) {
          out.push({
            volumeId: need("DescribeVolumes", v.VolumeId, "VolumeId"),
            zone: need("DescribeVolumes", v.AvailabilityZone, "AvailabilityZone"),
            state: need("DescribeVolumes", v.State, "State"),
            tags: tagMap(v.Tags),
            attachments: (v.Attachments ?? []).map((a) => ({
              instanceId: need("DescribeVolumes", a.InstanceId, "Attachments.InstanceId"),
              device: a.Device ?? null,
              state: need("DescribeVolumes", a.State, "Attachments.State"),
            })),
          });
        }
        token = r.NextToken;
        if (!token || ids) break;
      }
      return out;
    },
    async attachVolume(volumeId, instanceId, device) {
      const r = await send("AttachVolume", (c, m) => c.send(new m.AttachVolumeCommand({ VolumeId: volumeId, InstanceId: instanceId, Device: device })));
      return { state: need("AttachVolume", r.State, "State") };
    },
    async describePeers(env, roleKey, retryAfterMs = 30_000) {
      return await describeAll([{ Name: `tag:${env.key}`, Values: [env.value] }, { Name: "instance-state-name", Values: ["pending", "running"] }], roleKey, "peers", retryAfterMs);
    },
    async instanceStates(ids, retryAfterMs = 30_000) {
      const out: Record<string, string> = {};
      for (let i = 0; i < ids.length; i += FILTER_VALUES) {
        const found = await describeAll([{ Name: "instance-id", Values: ids.slice(i, i + FILTER_VALUES) }], "", "liveness", retryAfterMs);
        for (const p of found) out[p.id] = p.state;
      }
      return out;
    },
  };

  /** Every page of one filtered DescribeInstances, on the client without retries: throttled is Ec2Throttled, retry after retryAfterMs. */
  async function describeAll(filters: Filter[], roleKey: string, what: string, retryAfterMs: number): Promise<PeerInfo[]> {
    const out: PeerInfo[] = [];
    let token: string | undefined;
    for (let page = 0; ; page++) {
      if (page === 100) throw new AgentError("Ec2BadAnswer", `EC2 DescribeInstances gave more than 100 pages (${what}); retrying on the next tick`);
      const r = await send("DescribeInstances", (_c, m) => onceClient(m).send(new m.DescribeInstancesCommand({ Filters: filters, MaxResults: 1000, NextToken: token })))
        .catch((e: AgentError) => {
          throw e.reason === "Ec2Throttled"
            ? new AgentError("Ec2Throttled", `EC2 DescribeInstances (${what}) was throttled (RequestLimitExceeded); reading again in ${Math.round(retryAfterMs / 1000)} s`, { kind: "after", ms: retryAfterMs }, { cause: e.cause })
            : e;
        });
      out.push(...parsePeers(r.Reservations, roleKey));
      token = r.NextToken;
      if (!token) return out;
    }
  }
}
