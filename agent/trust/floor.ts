// The replay floor of a new node: the newest of the tips its peers report (agent:tip), where
// "newest" is the one that descends from all the others. Pure: ancestry comes in as a relation.

/** The repository's own signers file (trust/trust.ts); here so that the tick names it without loading trust/. */
export const REPO_SIGNERS = "trust/allowed_signers";

/**
 * The tip among `tips` that descends from every other one, or null when they are not on one line
 * (then no single floor exists: some peer reports a tip from another history). Order-independent.
 */
export function newestTip(tips: string[], descends: (a: string, b: string) => boolean): string | null {
  const distinct = [...new Set(tips)];
  return distinct.find((a) => distinct.every((b) => a === b || descends(a, b))) ?? null;
}
