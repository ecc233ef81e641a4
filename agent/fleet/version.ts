// Mixed agent versions in one role: which agents understand the manifest's `rollout:` fields.
// An agent tags its instance agent:version; one with no such tag predates waves and deploys a new
// pin at once, whatever the rollout says.

/** The first agent version that reads `rollout:` (waves, bake, maxFailures, onFailure) and tags agent:version. */
export const ROLLOUT_MIN_VERSION = "0.1.0";

/** "1.2.3", "v1.2", "1.2.3-dev+abc" → [1, 2, 3] / [1, 2, 0]; null when it does not start with a number. */
export function parseVersion(v: string): [number, number, number] | null {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : null;
}

/**
 * Whether version `v` is older than `min`, semver-ish: major, minor, patch compared as numbers; a
 * pre-release or build suffix is ignored (a 0.1.0-dev build has the 0.1.0 code). null: `v` is not a
 * version (it cannot be told).
 */
export function olderThan(v: string, min: string = ROLLOUT_MIN_VERSION): boolean | null {
  const a = parseVersion(v), b = parseVersion(min);
  if (!a || !b) return null;
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return false;
}

export type AgentCaution = "predates-waves" | "older" | "unknown-version";

/** Why a node's agent may not follow the rollout: null when it does (or the manifest has no `rollout:`). */
export function agentCaution(version: string | null, rollout: boolean, min: string = ROLLOUT_MIN_VERSION): AgentCaution | null {
  if (!rollout) return null;
  if (!version) return "predates-waves";
  const old = olderThan(version, min);
  return old === null ? "unknown-version" : old ? "older" : null;
}

/** One line for an operator: what the caution means for the rollout. */
export function cautionText(c: AgentCaution, version: string | null, min: string = ROLLOUT_MIN_VERSION): string {
  switch (c) {
    case "predates-waves": return "no agent:version tag: its agent predates waves and deploys a new pin at once; upgrade it";
    case "older": return `agent ${version} is older than ${min}, the first that follows rollout: waves; upgrade it`;
    case "unknown-version": return `agent:version "${version}" is not a version: cannot tell whether it follows rollout: waves`;
  }
}
