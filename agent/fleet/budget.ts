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
