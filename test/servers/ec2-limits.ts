// What makes the EC2 stand-in behave like an account under load: token buckets per action class
// (Describe* 100 burst / 20 per s, CreateTags 100 / 10 per s, shared by every caller, answering
// RequestLimitExceeded), and stale reads: tags a caller writes reach other callers only later.

/** One bucket: `burst` tokens, refilled at `perSecond`. */
export interface BucketLimit { burst: number; perSecond: number }
/** Buckets by action class; null disables that class's limit. Mutable on a running server. */
export interface Ec2Limits { describe: BucketLimit | null; createTags: BucketLimit | null }

export const EC2_LIMITS: Ec2Limits = { describe: { burst: 100, perSecond: 20 }, createTags: { burst: 100, perSecond: 10 } };

/** The class of an action: Describe* share one bucket, CreateTags has its own, the rest are not limited here. */
export function bucketOf(action: string): keyof Ec2Limits | null {
  if (action.startsWith("Describe")) return "describe";
  if (action === "CreateTags") return "createTags";
  return null;
}

/** Token buckets on a clock in ms; take() is false when the bucket is empty (the call is throttled). */
export class Buckets {
  private state = new Map<string, { tokens: number; at: number; limit: BucketLimit }>();
  constructor(private now: () => number = () => performance.now()) {}

  take(name: string, limit: BucketLimit | null): boolean {
    if (!limit) return true;
    const t = this.now();
    let s = this.state.get(name);
    if (!s || s.limit.burst !== limit.burst || s.limit.perSecond !== limit.perSecond) {
      s = { tokens: limit.burst, at: t, limit: { ...limit } };   // a changed limit starts full
      this.state.set(name, s);
    }
    s.tokens = Math.min(limit.burst, s.tokens + ((t - s.at) / 1000) * limit.perSecond);
    s.at = t;
    if (s.tokens < 1) return false;
    s.tokens -= 1;
    return true;
  }
}

/**
 * Tags as others see them: each write is recorded with when it becomes visible to callers other
 * than its writer (the access key id that signed it). A reader sees the newest write that is
 * visible to it; the writer sees its own writes at once.
 */
export class TagViews {
  private log = new Map<string, { visibleAt: number; writer: string; tags: Record<string, string> }[]>();
  constructor(private now: () => number = () => performance.now()) {}

  /** Records `after`, the resource's tags after a write by `writer`, visible to others after delayMs. */
  wrote(resourceId: string, before: Record<string, string>, after: Record<string, string>, writer: string, delayMs: number): void {
    const t = this.now();
    const entries = this.log.get(resourceId) ?? [{ visibleAt: 0, writer: "", tags: { ...before } }];
    entries.push({ visibleAt: t + delayMs, writer, tags: { ...after } });
    // entries visible to everyone, but the newest of them, are never read again
    const lastVisible = entries.findLastIndex((e) => e.visibleAt <= t);
    this.log.set(resourceId, lastVisible > 0 ? entries.slice(lastVisible) : entries);
  }

  /** The tags `reader` sees of a resource whose current tags are `current`. */
  seen(resourceId: string, current: Record<string, string>, reader: string): Record<string, string> {
    const entries = this.log.get(resourceId);
    if (!entries) return current;
    const t = this.now();
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i]!;
      if (e.visibleAt <= t || (reader !== "" && e.writer === reader)) return i === entries.length - 1 ? current : e.tags;
    }
    return current;
  }
}
