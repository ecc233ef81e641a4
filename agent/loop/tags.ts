// The agent:* tags a node writes on its own instance, so a person (and later, rollout pacing)
// can see the fleet with one describe-instances; with trust:, agent:tip too. Written at the end of a tick, only on change.
import { toAgentError, type AgentError } from "../core/errors.ts";
import type { Status } from "../status/types.ts";
import type { Ports } from "./ports.ts";
import { VERSION } from "../core/version.ts";

/** waiting: held at the rollout gate with no healthy release to stand on (a new node): peers count it neither on the commit nor in flight. */
export type TagState = "converged" | "deploying" | "failed" | "waiting";

/** What agent:state says after a tick. Pure. */
export function tagState(converged: boolean, deploy: "success" | "rolled_back" | "failed" | null, error: AgentError | null): TagState {
  if (converged) return "converged";
  return deploy === "rolled_back" || deploy === "failed" || error?.reason === "CommitMarkedBad" ? "failed" : "deploying";
}

/** agent:commit / agent:state / agent:failed / agent:version / agent:since; no call at all when they are what was last written. */
export async function writeTags(p: Ports, status: Status, state: TagState): Promise<void> {
  const id = status.instance;
  if (!p.cloud || !id.id || !id.region) return;
  const bad = p.store.get().badCommits.at(-1);
  const want: Record<string, string> = {
    "agent:commit": status.current.commit ?? "none",
    "agent:state": state,
    ...(bad ? { "agent:failed": bad } : {}),
    // rollout waves: which agent wrote these (no agent:version: an agent that predates waves), and
    // since when it runs agent:commit converged (kept from the last converged tick otherwise).
    "agent:version": VERSION,
    ...(state === "converged" && status.current.since ? { "agent:since": status.current.since } : {}),
    // trust: the replay floor for new nodes; only a converged node vouches for its (verified) tip.
    ...(p.trust && state === "converged" && status.desired.tip ? { "agent:tip": status.desired.tip } : {}),
  };
  // rollout.store: dynamodb: the same record in the table (only when the node config names one).
  await p.cloud.rolloutTable?.publish({ instanceId: id.id, region: id.region, zone: id.zone ?? "", role: id.role, environment: id.environment }, want)
    .catch((e) => p.log.child("tags").warn("could not write the rollout record", { error: toAgentError(e).message }));
  const last = p.store.get().tags;
  if (Object.entries(want).every(([k, v]) => last[k] === v)) return;
  try {
    const written = await p.cloud.syncTags({ instanceId: id.id, region: id.region, zone: id.zone ?? "", role: id.role, environment: id.environment }, want, last);
    p.store.update((s) => { s.tags = written; });
  } catch (e) {
    p.log.child("tags").warn("could not write instance tags", { error: toAgentError(e).message });
  }
}
