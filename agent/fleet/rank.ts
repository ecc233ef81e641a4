// The order every node computes alike: peers ranked by a hash of (commit, instance id), so the
// canary rotates from release to release, and the cumulative wave sizes for N live peers. Pure.

/** A 53-bit string hash (cyrb53): the same on every node and every run, well spread. */
export function hash53(s: string): number {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Instance ids in rank order for `commit` (ties, which need a hash collision, by id). */
export function rankOrder(commit: string, ids: readonly string[]): string[] {
  return ids
    .map((id) => ({ id, h: hash53(`${commit}:${id}`) }))
    .sort((a, b) => a.h - b.h || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((e) => e.id);
}

/**
 * Cumulative sizes of the non-empty waves for n nodes: a count is min(count, n), a share is
 * ceil(share × n); a wave no larger than the one before is skipped, and a last wave below n is
 * followed by one of n (every node gets a turn). [] for n = 0.
 */
export function waveSizes(waves: readonly (number | string)[], n: number): number[] {
  const out: number[] = [];
  for (const w of waves) {
    const size = typeof w === "number" ? Math.min(w, n) : Math.min(n, Math.ceil((Number(w.replace("%", "")) * n) / 100));
    if (size > (out.at(-1) ?? 0)) out.push(size);
  }
  if (n > 0 && (out.at(-1) ?? 0) < n) out.push(n);
  return out;
}

/** The wave (0-based) of the node at `rank` (0-based) given cumulative sizes. */
export function waveOf(sizes: readonly number[], rank: number): number {
  const k = sizes.findIndex((s) => rank < s);
  return k < 0 ? sizes.length - 1 : k;
}
