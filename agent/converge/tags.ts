// The agent:* tags on the node's own instance (agent:commit, agent:state, agent:failed), written
// only when they differ from what this agent last wrote (state.json `tags`).
import type { Ec2 } from "../cloud/ec2.ts";

/**
 * Write the tags of `want` whose values differ from `lastWritten`, in one CreateTags call; no
 * call at all when nothing changed. Returns what is now written (store it as the new lastWritten).
 * Throws the Ec2 AgentError when the call fails (lastWritten is then unchanged).
 */
export async function syncTags(ec2: Ec2, instanceId: string, want: Record<string, string>, lastWritten: Record<string, string>): Promise<Record<string, string>> {
  const changed = Object.fromEntries(Object.entries(want).filter(([k, v]) => lastWritten[k] !== v));
  if (Object.keys(changed).length === 0) return lastWritten;
  await ec2.createTags(instanceId, changed);
  return { ...lastWritten, ...changed };
}

/** The tag with the newest verified tip a node converged on (trust:): the floor of new nodes. */
export const TIP_TAG = "agent:tip";

/**
 * agent:tip of the other running instances of the environment: the same one filtered,
 * paginated DescribeInstances the fleet's peers come from (Ec2.describePeers).
 */
export async function peerTips(ec2: Ec2, env: { key: string; value: string }, roleKey: string, self: string): Promise<{ instanceId: string; tip: string }[]> {
  const found = await ec2.describePeers(env, roleKey);
  return found.filter((i) => i.id !== self && i.state === "running" && /^[0-9a-f]{40}$/.test(i.tags[TIP_TAG] ?? ""))
    .map((i) => ({ instanceId: i.id, tip: i.tags[TIP_TAG]! }));
}
