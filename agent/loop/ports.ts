// What the reconcile loop needs from the world, as small interfaces. cli/run.ts and cli/once.ts
// build the real ones (loop/wire.ts); tests can hand in stand-ins at this level.
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import type { Parsed } from "../manifest/parse.ts";
import type { Config, Manifest, Role } from "../manifest/schema.ts";
import type { ReleaseState } from "../plan/release.ts";
import type { ActionBase } from "../plan/types.ts";
import type { Layout } from "../state/layout.ts";
import type { CachedIdentity, StateStore } from "../state/store.ts";
import type { RolloutTablePort, SlotAnswer } from "./rollout-table.ts";
import type { ProcessStatus, ResourceStatus } from "../status/types.ts";
import type { Trust } from "../trust/trust.ts";
import type { Secrets } from "../secrets/keeper.ts";
import type { PeerInfo } from "../cloud/ec2.ts";

export interface Identity {
  instanceId: string;
  region: string;
  zone: string;
  role: string | null;
  environment: string | null;
}

export interface IdentityPort {
  /** Who this node is; may answer from the cache in state.json (then `warning` says so). */
  resolve(cached: CachedIdentity | null): Promise<{ identity: Identity; warning?: string }>;
}

export interface SourcePort {
  /** One small request: the branch tip. Throws AgentError (SourceUnreachable, ForcePushRefused, …). */
  poll(lastTip: string | null): Promise<{ tip: string; moved: boolean }>;
  readManifest(tip: string, environment: string): Promise<Parsed<Manifest> & { file: string }>;
  /** Make sure the commit is in the store (fetch if needed); throws CommitNotFound. */
  ensureCommit(commit: string): Promise<{ subject: string }>;
  readRole(commit: string, role: string): Promise<Role>;
  /** The raw commit object, for signature checks (trust:). */
  commitObject?(commit: string): Promise<Uint8Array>;
  /** A file's text at a commit in the store, or null (trust/allowed_signers). */
  readFile?(commit: string, path: string): Promise<string | null>;
  /** Does `oid` descend from `ancestor`? Fetches the history between them when needed. */
  descendsFrom?(oid: string, ancestor: string): Promise<boolean>;
  /** Keep the object store bounded (rebuild it when it grew too much); `keep` must stay fetchable. */
  maintain?(tip: string, keep: string[]): Promise<unknown>;
}

export interface ReleaseInfo {
  state: ReleaseState;
  failedAt?: number | null;
  reason?: string | null;
  message?: string | null;
  /** ISO time it became active/good (status `current.since`). */
  since?: string | null;
}

export interface ReleasesPort {
  info(commit: string): ReleaseInfo;
  /** The commit `current` points at, or null. */
  current(): string | null;
  /** Check out and set up the release beside the running one; throws AgentError on failure (the release is marked failed). */
  prepare(commit: string, role: Role, env: Record<string, string>, signal: AbortSignal): Promise<void>;
  switchCurrent(commit: string): void;
  mark(commit: string, state: "active" | "good" | "failed", reason?: string, message?: string): void;
  /** Run a hook command in the release dir; throws AgentError("HookFailed") on a non-zero exit. */
  runHook(commit: string, role: Role, command: string, phase: "before_cutover" | "after_cutover", signal: AbortSignal): Promise<void>;
  prune(inUse: string[]): void;
}

export interface ProcessesPort {
  /** Level-based: run exactly these processes of `commit` (start missing, keep matching, stop others). */
  ensure(commit: string, role: Role, env: Record<string, string>): Promise<void>;
  /** Restart in place onto `commit`, health-gated (only the processes named in `only`, when given). ok:false leaves the old processes running where it could. */
  replace(commit: string, role: Role, env: Record<string, string>, only?: string[]): Promise<{ ok: true } | { ok: false; reason: string; message: string }>;
  /** Stop every supervised process (gracefully). */
  stopAll(): Promise<void>;
  status(): ProcessStatus[];
  /** All processes of this commit running and healthy. */
  healthy(commit: string): boolean;
  /** The HTTP front, when a process of the role has `http:` (agent/loop/front.ts); absent in stand-ins. */
  frontStatus?(): Promise<import("../status/types.ts").FrontStatus | null>;
}

/** A node-level resource (volume, address): observe + plan in one call, then apply. */
export interface ResourcePort {
  ref: string;
  plan(): Promise<{ actions: ActionBase[]; condition: ResourceStatus }>;
  apply(action: ActionBase): Promise<void>;
}

export interface CloudPort {
  /** Volumes of the role (processes start only after they are ready). */
  volumes(role: Role, manifest: Manifest, identity: Identity): ResourcePort[];
  /** The role's Elastic IP (associated only once processes are healthy). */
  address(role: Role, manifest: Manifest, identity: Identity): ResourcePort | null;
  /** Write agent:* tags when they changed; returns what was written. */
  syncTags(identity: Identity, want: Record<string, string>, last: Record<string, string>): Promise<Record<string, string>>;
  /** The agent:tip of the other running instances of this environment (trust: the floor of a new node). */
  peerTips?(identity: Identity): Promise<{ instanceId: string; tip: string }[]>;
  /** The store the manifest's rollout.store names (default tags); null when this node cannot read it (the tags need the instance's EC2 identity). */
  rolloutStore?(store: "tags" | "dynamodb"): RolloutStore | null;
  /** The DynamoDB rollout store, also for publishing this node's record (the table from the node config's rollout.table). */
  rolloutTable?: RolloutTablePort;
}

/**
 * Where a rollout's peers come from (loop/gate.ts asks only this): the instances' agent:* tags
 * (loop/rollout-tags.ts) or the DynamoDB table (loop/rollout-table.ts). docs/fleet.md.
 */
export interface RolloutStore {
  /** The peers, self included (the gate keeps those of its role); one read. */
  peers(identity: Identity): Promise<PeerInfo[]>;
  /** Ms until the next read, `nodes` being what the last read found: the budget this store reads on. Pure. */
  intervalMs(pollMs: number, nodes: number, jitter: number): number;
  /** rollout.maxInFlight enforced: hold one of the deploy slots (take one if free or expired). Absent: nothing to take. */
  slot?(identity: Identity, maxInFlight: number, leaseMs: number): Promise<SlotAnswer>;
  /** The cheap look before the barrier's full read (the slots only): could slot() hold one now? Takes nothing. */
  slotFree?(identity: Identity, maxInFlight: number, leaseMs: number): Promise<SlotAnswer>;
  /**
   * Records that outlive their instance: of the peers a decision is held by (fleet/liveness.ts
   * heldBy), those EC2 says are gone, their records deleted; at most one EC2 call per describe interval.
   */
  prune?(identity: Identity, heldBy: readonly string[], o: { pollMs: number; silentMs: number }): Promise<{ dead: string[]; notice: string | null }>;
}

/** The node in its role's load balancer target groups (agent/converge/targets.ts). Never throws. */
export interface TargetsPort {
  converge(identity: Identity, d: { groups: import("../plan/targets.ts").TargetGroupBinding[]; healthy: boolean; drain: boolean }, signal?: AbortSignal): Promise<import("../converge/targets.ts").TargetsOutcome>;
  /** Leave every group the node is registered in and wait for draining (bounded); no call when registered nowhere. */
  drain(signal?: AbortSignal): Promise<import("../converge/targets.ts").TargetsOutcome>;
}

export interface Ports {
  config: Config;
  layout: Layout;
  store: StateStore;
  clock: Clock;
  log: Logger;
  identity: IdentityPort;
  source: SourcePort;
  releases: ReleasesPort;
  processes: ProcessesPort;
  cloud: CloudPort | null;
  /** trust: set: the node's trusted keys (agent/trust/); absent or null: commits are not checked. */
  trust?: Trust | null;
  /** SSM and Secrets Manager references (agent/secrets/); absent in tests that use none. */
  secrets?: Secrets | null;
  /** Target group registration (roles.<role>.targetGroups); absent in tests that bind none. */
  targets?: TargetsPort | null;
}
