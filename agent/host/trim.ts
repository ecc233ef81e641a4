// Giving back the start-up pages of an idle daemon. The agent is one binary of ~120 MB; start-up,
// `agent _config`'s answer, a fetch and a deploy touch code pages of it that an idle tick never
// runs again, and each stays in the daemon's RSS (clean pages of the file: the kernel would drop
// them only under memory pressure). Once the node has been idle a while (its children gone, so
// the pages are the daemon's alone), madvise(MADV_PAGEOUT) hands the binary's read-only mappings
// back; what the next ticks run faults in again, and the RSS settles at the idle working set.
import { readFileSync, realpathSync } from "node:fs";
import { loadLibc } from "./libc.ts";

const MADV_PAGEOUT = 21;     // Linux 5.4+; older kernels answer EINVAL and nothing changes
const EINVAL = 22;

/** How long a node must be idle (no action, converged) before its pages are given back: the git and EC2 children exit 5 s after their last request. */
export const TRIM_QUIET_MS = 10_000;

export interface TrimMemory {
  /** When the daemon last did something (started, deployed, acted, failed). */
  busyAt: number;
  /** When the pages were last given back; null: never. */
  trimmedAt: number | null;
}

/**
 * Whether to give pages back after a tick, and the memory to keep. Pure. A tick that acted or did
 * not converge makes the node busy; the first idle tick `quietMs` after the last busy moment trims,
 * once per busy period.
 */
export function trimAfterTick(m: TrimMemory, tick: { now: number; idle: boolean }, quietMs = TRIM_QUIET_MS): { trim: boolean; memory: TrimMemory } {
  if (!tick.idle) return { trim: false, memory: { ...m, busyAt: tick.now } };
  const due = tick.now - m.busyAt >= quietMs && (m.trimmedAt === null || m.trimmedAt < m.busyAt);
  return { trim: due, memory: due ? { ...m, trimmedAt: tick.now } : m };
}

export interface Mapping { start: number; end: number; perms: string; path: string }

/** The read-only, file-backed mappings of `file` in a /proc/<pid>/maps text (code and constants; never a writable one). Pure. */
export function readOnlyMappingsOf(mapsText: string, file: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of mapsText.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s+(.+)$/.exec(line);
    if (!m || m[4] !== file || m[3]![1] === "w") continue;
    out.push({ start: parseInt(m[1]!, 16), end: parseInt(m[2]!, 16), perms: m[3]!, path: m[4]! });
  }
  return out;
}

export interface TrimResult {
  /** Bytes handed to madvise; 0 when the kernel does not support MADV_PAGEOUT. */
  advisedBytes: number;
  rssBeforeKB: number;
  rssAfterKB: number;
  /** Why nothing was given back, when nothing was. */
  skipped: string | null;
  /** The kernel has no MADV_PAGEOUT: asking again would change nothing. */
  unsupported: boolean;
}

const rssKB = () => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0);

/** Give back this process's clean pages of its own executable. Never throws. */
export function pageOutExecutable(): TrimResult {
  const before = rssKB();
  const result = (advisedBytes: number, skipped: string | null, unsupported = false): TrimResult =>
    ({ advisedBytes, rssBeforeKB: before, rssAfterKB: rssKB(), skipped, unsupported });
  try {
    const exe = realpathSync("/proc/self/exe");
    const maps = readOnlyMappingsOf(readFileSync("/proc/self/maps", "utf8"), exe);
    if (!maps.length) return result(0, `no read-only mapping of ${exe}`);
    const c = loadLibc();
    let advised = 0;
    for (const m of maps) {
      if (c.madvise(m.start, m.end - m.start, MADV_PAGEOUT) === 0) { advised += m.end - m.start; continue; }
      const errno = c.errno();
      return errno === EINVAL ? result(advised, "the kernel has no MADV_PAGEOUT (Linux 5.4+)", true) : result(advised, `madvise failed with errno ${errno}`);
    }
    return result(advised, null);
  } catch (e) {
    return result(0, (e as Error).message);
  }
}
