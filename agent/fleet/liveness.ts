// Liveness of the DynamoDB store's records: a record outlives its instance, and silence proves
// nothing (healthy nodes write only on a change), so EC2 is the truth. Only the peers the decision
// waits on (or would halt for) whose record has not changed for `silentMs` on the reader's own
// clock are asked about, in one filtered DescribeInstances at most once per interval; those EC2
// says are gone drop out of the peers. Pure: no I/O, no clock (now is passed in). docs/fleet.md.
import type { Decision } from "./types.ts";

/** Per record id: what it said (any string that changes when the record does) and when the reader first saw it say so. */
export type Silence = Record<string, { record: string; at: number }>;

/** The memory after a read: a record that changed (or is new) starts its silence now; records no longer there are forgotten. */
export function noteRecords(old: Silence, records: readonly { id: string; record: string }[], now: number): Silence {
  const m: Silence = {};
  for (const r of records) {
    const was = old[r.id];
    m[r.id] = was && was.record === r.record ? was : { record: r.record, at: now };
  }
  return m;
}

/**
 * The peers a decision is held by: whom a wait waits for (to converge, or to end a deploy), or whom a
 * deadline halt names. Not a bake: it ends by itself, and a baking peer is silent by design.
 */
export function heldBy(d: Decision): string[] {
  if (d.kind === "wait") return d.reason === "Baking" ? [] : [...d.for];
  if (d.kind === "halted" && d.reason === "PeerStuck") return [...d.by];
  return [];
}

/** An EC2 instance id (i- and hex): a record under any other id (a static identity off EC2) is never asked about or deleted. */
export const isInstanceId = (id: string) => /^i-[0-9a-f]{1,17}$/.test(id);

export interface CheckInput {
  self: string;
  /** heldBy(decision). */
  heldBy: readonly string[];
  silence: Silence;
  /** How long a record must have said the same for its instance to be asked about (rollout.lease). */
  silentMs: number;
  now: number;
  /** The earliest the next check may be made (the last check + the describe interval, or a backoff). */
  nextCheckAt: number;
}

/**
 * Which ids to ask EC2 about now: the held-by peers (self aside, EC2 instance ids only) whose record
 * has said the same for at least silentMs; none before nextCheckAt. Sorted, each once.
 */
export function idsToCheck(input: CheckInput): string[] {
  if (input.now < input.nextCheckAt) return [];
  const ids = new Set(input.heldBy.filter((id) => id !== input.self && isInstanceId(id)));
  return [...ids].filter((id) => {
    const s = input.silence[id];
    return s !== undefined && s.at + input.silentMs <= input.now;
  }).sort();
}

/** EC2 states in which an instance runs no agent that could write again soon (absent: EC2 no longer knows it). */
export const GONE_STATES = new Set(["shutting-down", "terminated", "stopping", "stopped"]);

/** Of the ids asked about, those whose instance is gone: absent from the answer, or in GONE_STATES. */
export function deadIds(checked: readonly string[], states: Readonly<Record<string, string>>): string[] {
  return checked.filter((id) => states[id] === undefined || GONE_STATES.has(states[id]!));
}
