// The planner's inputs and outputs: what a node read of its peers (tags from one DescribeInstances),
// the rollout settings of the manifest, and what the reader remembers of when it first saw things.
// Plain data only; times are milliseconds on the reader's own clock (never a peer's).

/** One instance of the same role and environment, as DescribeInstances showed it (self included). */
export interface Peer {
  id: string;
  /** EC2's instance state: pending | running | shutting-down | terminated | stopping | stopped. */
  state: string;
  /** EC2's LaunchTime (ms); informational, never compared with the reader's clock. */
  launchedAt: number | null;
  /** The agent:* tags (agent:commit, agent:state, agent:failed, agent:since, agent:version), others ignored. */
  tags: Record<string, string>;
}

export type OnFailure = "halt" | "rollback";

/** manifest `rollout:` with defaults applied; durations in ms. */
export interface RolloutSettings {
  /** Cumulative share per wave: a node count (1) or a percentage ("25%"). */
  waves: readonly (number | string)[];
  bakeMs: number;
  deadlineMs: number;
  maxFailures: number;
  onFailure: OnFailure;
  /** At most this many peers deploying at once (advisory in the planner; enforced by the DynamoDB store's slots). */
  maxInFlight?: number;
  /** Where the records are: the peers' EC2 tags or the DynamoDB table (loop/rollout-table.ts). */
  store?: "tags" | "dynamodb";
  /** store: dynamodb: a slot whose version has not changed this long (the reader's clock) is free. */
  leaseMs?: number;
}

export const ROLLOUT_DEFAULTS = { bakeMs: 120_000, deadlineMs: 900_000, maxFailures: 1, onFailure: "halt" as OnFailure, leaseMs: 120_000 };

/**
 * What one reader remembers between reads, on its own clock. Returned updated by planFleet; the
 * caller keeps it (in memory or state.json) and passes it back. A new pin resets it.
 */
export interface FleetMemory {
  /** The pinned commit this memory is about and when the reader first saw it pinned. */
  commit: string | null;
  pinnedAt: number;
  /** Peer id -> when the reader first saw it converged on `commit` (dropped when seen otherwise). */
  converged: Record<string, number>;
  /** Peer id -> when the reader first saw it due to move (or deploying) and not yet converged or failed. */
  due: Record<string, number>;
}

export const emptyMemory = (): FleetMemory => ({ commit: null, pinnedAt: 0, converged: {}, due: {} });

export interface FleetInput {
  self: string;
  /** The commit this node runs now (its current release), null before its first release. */
  current: string | null;
  /** The pinned commit C (the manifest's, or the role's own `commit:`). */
  pinned: string;
  peers: readonly Peer[];
  rollout: RolloutSettings;
  memory: FleetMemory;
  /** The live peers' ids in rank order, when the caller already has them (they must equal rankOrder(pinned, live ids)). */
  order?: readonly string[];
  /** The reader's clock, ms. */
  now: number;
}

export type Decision =
  /** Run `commit` now: C (its wave's turn, alone, already on it) or, for a node launched mid-rollout, what its converged peers run. */
  | { kind: "move"; commit: string; reason: "Wave" | "Alone" | "OnCommit" | "Launch" }
  /** Keep what runs; look again. `until`: when waiting would end by itself (bake over) or halt (deadline); null when unknown. */
  | { kind: "wait"; for: string[]; until: number | null; reason: "Baking" | "EarlierWave" | "WaveFull" }
  /** The rollout of C is halted by `by`; keep what runs (C included) until the manifest pins another commit. */
  | { kind: "halted"; by: string[]; reason: "PeerFailed" | "PeerStuck" }
  /** onFailure: rollback and this node runs C: go back to the last good release. */
  | { kind: "rollback"; by: string[]; reason: "PeerFailed" };

export interface FleetPlan {
  decision: Decision;
  /** This node's wave, 0-based, and how many non-empty waves the live peers make. */
  wave: number;
  waves: number;
  /** Live peers in rank order (this commit's order), self included. */
  order: string[];
  /** Live peers whose agent predates waves (no agent:version tag): they deploy at once. */
  legacy: string[];
  memory: FleetMemory;
}
