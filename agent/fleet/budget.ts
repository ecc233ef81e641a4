// How often a node may read its peers during a rollout: one filtered DescribeInstances per
// max(poll, N/5 s), N the nodes of the environment, so N nodes together make at most 5 calls/s
// against the account's Describe bucket (refill 20/s). Pure: the jitter is passed in.

/**
 * Milliseconds until the next peers read: max(pollMs, nodes × pages / 5 s), lengthened by jitter in
 * [0, 1) to [1, 1.5) times that, never shortened, so nodes started together drift apart and N
 * nodes together stay under 5 calls/s. `pages`: DescribeInstances calls one read takes (1000
 * instances a page; pagesPerRead); the default 1 is the max(poll, N/5 s), which holds the
 * 5 calls/s only up to 1000 instances (docs/fleet.md). Idle ticks make no read at all.
 */
export function describeIntervalMs(pollMs: number, nodes: number, jitter: number, pages = 1): number {
  const base = Math.max(pollMs, ((Math.max(1, nodes) * Math.max(1, pages)) / 5) * 1000);
  const j = Math.min(Math.max(jitter, 0), 0.999999);
  return Math.round(base * (1 + j * 0.5));
}

/** DescribeInstances calls one read of `instances` takes, at 1000 a page (MaxResults' maximum). */
export function pagesPerRead(instances: number): number {
  return Math.max(1, Math.ceil(instances / 1000));
}

/** After RequestLimitExceeded: double the wait, up to 10 times the interval (jitter as above). */
export function backoffMs(intervalMs: number, attempt: number, jitter: number): number {
  const j = Math.min(Math.max(jitter, 0), 0.999999);
  return Math.round(Math.min(intervalMs * 2 ** Math.max(0, attempt), intervalMs * 10) * (1 + j * 0.5));
}

// The DynamoDB store (rollout.store: dynamodb): every record of a role shares one partition key
// (`<env>#<role>`), and one partition key serves at most 3,000 read request units a second. A node's
// read is one strongly consistent Query of the whole partition: 1 RRU per 4 KB of each 1 MB page.

/** Bytes of one node record in the table: key (~30 B) + commit (40) + state, since, failed, agentVersion. */
export const ITEM_BYTES = 160;
/** DynamoDB's page size for a Query (1 MB). */
export const QUERY_PAGE_BYTES = 1 << 20;
/** What one partition key serves at most (read request units a second). */
export const PARTITION_RRU_PER_SEC = 3000;
/** The share of it the role's peer reads may use: half, so writes' retries, slot reads and a burst of jitter have room. */
export const READ_BUDGET_RRU_PER_SEC = PARTITION_RRU_PER_SEC / 2;

/** RRU of one strongly consistent Query of `records` records: ceil(bytes / 4 KB) for each 1 MB page (≈ ceil(records × 160 B / 4 KB)). */
export function rruPerRead(records: number): number {
  const bytes = Math.max(1, records) * ITEM_BYTES;
  const full = Math.floor(bytes / QUERY_PAGE_BYTES), rest = bytes - full * QUERY_PAGE_BYTES;
  return full * Math.ceil(QUERY_PAGE_BYTES / 4096) + Math.ceil(rest / 4096);
}

/**
 * Milliseconds until the next read of the role's partition: max(pollMs, nodes × rruPerRead(nodes) /
 * budget s), lengthened by jitter in [0, 1) to [1, 1.5) times that (as describeIntervalMs), so
 * `nodes` nodes reading the whole partition together ask for at most `budgetRruPerSec`.
 * `nodes`: the role's records at the last read. With poll 30 s that is every poll up to about 1,000 nodes.
 */
export function queryIntervalMs(pollMs: number, nodes: number, jitter: number, budgetRruPerSec = READ_BUDGET_RRU_PER_SEC): number {
  const n = Math.max(1, nodes);
  const base = Math.max(pollMs, Math.ceil(((n * rruPerRead(n)) / budgetRruPerSec) * 1000));
  const j = Math.min(Math.max(jitter, 0), 0.999999);
  return Math.round(base * (1 + j * 0.5));
}
