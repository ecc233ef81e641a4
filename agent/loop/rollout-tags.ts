// The tags store of a rollout (manifest rollout.store: tags, the default): the peers are the
// environment's pending and running instances with their agent:* tags, one filtered, paginated
// DescribeInstances a read, on the account's Describe budget. A terminated instance drops out by
// the read's state filter. maxInFlight is only the planner's count here (no slot). docs/fleet.md.
import { describeIntervalMs } from "../fleet/budget.ts";
import type { PeerInfo } from "../cloud/ec2.ts";
import type { Identity, RolloutStore } from "./ports.ts";

export function tagsStore(describe: (identity: Identity) => Promise<PeerInfo[]>): RolloutStore {
  return { peers: describe, intervalMs: (poll, nodes, jitter) => describeIntervalMs(poll, nodes, jitter) };
}
