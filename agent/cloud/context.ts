// What the volume, address and tag steps need from the outside, built by the loop once per
// tick; plus the memory they keep between ticks so an idle tick makes no EC2 call.
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import type { Ec2 } from "./ec2.ts";

export interface CloudMemory {
  /** Per volume name: the volume found for its binding, and when EC2 last confirmed it. */
  volumes: Map<string, { volumeId: string; device: string | null; checkedAt: number }>;
  /** The address we hold, and when EC2 last confirmed it. */
  address: { allocationId: string; publicIp: string; checkedAt: number } | null;
}

export const createCloudMemory = (): CloudMemory => ({ volumes: new Map(), address: null });

export interface CloudContext {
  ec2: Ec2;
  instanceId: string;
  zone: string;
  /** Where EBS by-id links appear (config devices.byIdDir). */
  byIdDir: string;
  log: Logger;
  clock: Clock;
  /** Kept by the loop across ticks (createCloudMemory()). */
  memory: CloudMemory;
  /** Re-ask EC2 about a converged volume or address at most this often (default 5 minutes). */
  recheckMs?: number;
  /** How long volume.wait waits for an attachment within one apply (default 60 s). */
  attachDeadlineMs?: number;
  /** Poll interval while waiting for an attachment (default 1 s). */
  attachPollMs?: number;
}

export const DEFAULT_RECHECK_MS = 5 * 60_000;
export const DEFAULT_ATTACH_DEADLINE_MS = 60_000;
export const DEFAULT_ATTACH_POLL_MS = 1_000;
