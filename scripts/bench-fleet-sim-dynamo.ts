// The DynamoDB store's side of the fleet benchmark: what a simulated rollout (bench-fleet.ts's
// event-driven run with store: dynamodb, maxInFlight enforced) costs in read and write request
// units, and the call rate. DynamoDB on-demand has no per-account token bucket like EC2's: a read
// is one strongly consistent Query of the role's partition (1 MB a page, 1 RRU per 4 KB of the
// page, rounded up), a write is 1 WRU per 1 KB item. Pure arithmetic on the run's counts.

import { ITEM_BYTES, PARTITION_RRU_PER_SEC, QUERY_PAGE_BYTES, queryIntervalMs, READ_BUDGET_RRU_PER_SEC, rruPerRead } from "../agent/fleet/budget.ts";

export interface DynamoRun { nodes: number; durationMs: number | null; ddbReads: number; peakReadsPerSec: number; ranC: number; maxInFlight: number; deployMs: number; pollMs: number }

/** On-demand prices, us-east-1 (per million request units). */
export const PRICE = { readPerMillion: 0.125, writePerMillion: 0.625 };

export interface DynamoCost { queryPages: number; rru: number; wru: number; heartbeats: number; readsPerSec: number; rruPerSec: number; peakRruPerSec: number; usd: number; leaseDelayMs: number }


/** The request units of one run; `leaseMs` for the heartbeat count (every lease/3 while deploying) and a crashed holder's delay. */
export function dynamoCost(run: DynamoRun, leaseMs: number): DynamoCost {
  const bytes = run.nodes * ITEM_BYTES;
  const pagesPerRead = Math.max(1, Math.ceil(bytes / QUERY_PAGE_BYTES));
  const rru1 = rruPerRead(run.nodes);
  const heartbeats = run.ranC * Math.floor(run.deployMs / (leaseMs / 3));
  // per node that moves: take the slot, publish deploying, heartbeats, publish converged, release.
  const wru = run.ranC * 4 + heartbeats;
  const rru = run.ddbReads * rru1;
  const readsPerSec = run.durationMs ? run.ddbReads / (run.durationMs / 1000) : 0;
  return { queryPages: run.ddbReads * pagesPerRead, rru, wru, heartbeats, readsPerSec, rruPerSec: readsPerSec * rru1, peakRruPerSec: run.peakReadsPerSec * rru1,
    usd: (rru * PRICE.readPerMillion + wru * PRICE.writePerMillion) / 1e6,
    // a holder that dies mid-deploy keeps its slot until its version has not moved for a lease (waiter's clock) plus one read interval
    leaseDelayMs: leaseMs + queryIntervalMs(run.pollMs, run.nodes, 0) };
}

export function dynamoTable(rows: { name: string; run: DynamoRun }[], leaseMs: number): string[] {
  const out = [
    `DynamoDB store (on-demand, strongly consistent Query; lease ${leaseMs / 1000}s, heartbeat every ${leaseMs / 3000}s while deploying; $${PRICE.readPerMillion}/M RRU, $${PRICE.writePerMillion}/M WRU)`,
    "| scenario | nodes | maxInFlight | rollout (min) | Query calls | pages | reads/s | RRU/s mean / peak (partition limit " + PARTITION_RRU_PER_SEC + ", budget " + READ_BUDGET_RRU_PER_SEC + ") | RRU | WRU (heartbeats) | cost ($) | a crashed holder delays its slot by |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const { name, run } of rows) {
    const c = dynamoCost(run, leaseMs);
    out.push(`| ${name} | ${run.nodes} | ${run.maxInFlight} | ${run.durationMs == null ? "-" : (run.durationMs / 60_000).toFixed(1)} | ${run.ddbReads} | ${c.queryPages} | ${c.readsPerSec.toFixed(0)} | ${c.rruPerSec.toFixed(0)} / ${c.peakRruPerSec.toFixed(0)} | ${c.rru} | ${c.wru} (${c.heartbeats}) | ${c.usd.toFixed(2)} | ${(c.leaseDelayMs / 1000).toFixed(0)}s |`);
  }
  return out;
}
