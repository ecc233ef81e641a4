// `agent status --fleet`: the environment's rollout from one filtered, paginated DescribeInstances
// (the peers' agent:* tags), with the manifest this node last read. Read-only.
import { createEc2 } from "../cloud/ec2.ts";
import { endpointFor } from "../cloud/endpoints.ts";
import { AgentError } from "../core/errors.ts";
import { fleetView, type FleetView } from "../fleet/view.ts";
import { cautionText } from "../fleet/version.ts";
import { pinnedCommit } from "../plan/release.ts";
import { layout } from "../state/layout.ts";
import { StateStore } from "../state/store.ts";
import type { loadConfig } from "./config.ts";

export async function readFleet(config: ReturnType<typeof loadConfig>): Promise<FleetView> {
  if (typeof config.identity === "object") {
    throw AgentError.terminal("NoEc2Identity", `--fleet reads the peers' instance tags: it needs the instance's EC2 identity (identity: imds in ${config.path})`);
  }
  const st = new StateStore(layout(config.stateDir).stateFile).get();
  const id = st.identity, manifest = st.manifest;
  if (!id?.environment || !id.region) throw AgentError.terminal("NoIdentityYet", `this node has not found its identity yet (${config.stateDir}/state.json); start the agent first`);
  if (!manifest || manifest.environment !== id.environment) throw AgentError.terminal("NoManifestYet", `this node has not read the manifest of ${id.environment} yet; start the agent first`);
  // The SDK's default credential chain reads the instance role's keys from IMDS: the one configured.
  if (config.imds.endpoint) process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = config.imds.endpoint;
  const ec2 = createEc2({ region: id.region, endpoint: endpointFor(config.aws, "ec2", process.env) });
  const peers = await ec2.describePeers({ key: config.tags.environment, value: id.environment }, config.tags.role);
  const m = manifest.value;
  return fleetView({ environment: id.environment, peers, pinned: (role) => pinnedCommit(m, role), waves: m.rollout?.waves ?? null, maxFailures: m.rollout?.maxFailures ?? 1 });
}

/** The fleet as text: per role a summary line, then one line per node in rank order. */
export function renderFleet(v: FleetView): string {
  const out: string[] = [`environment ${v.environment}`];
  const short = (c: string | null) => (c ? c.slice(0, 12) : "-");
  for (const r of v.roles) {
    const where = r.state === "done" ? `done: ${r.onCommit} of ${r.nodes.length} on ${short(r.commit)}`
      : r.state === "halted" ? `halted by ${r.haltedBy.join(", ")} (agent:failed=${short(r.commit)}) in wave ${r.wave} of ${r.of}`
        : `wave ${r.wave} of ${r.of}: waiting, ${r.onCommit} of ${r.nodes.length} on ${short(r.commit)}`;
    out.push("", `${r.role}  ${where}`);
    const rows = [["INSTANCE", "ZONE", "WAVE", "COMMIT", "STATE", "SINCE", "FAILED", "AGENT"],
      ...r.nodes.map((n) => [n.instance, n.zone ?? "-", String(n.wave), short(n.commit), n.state ?? "-", n.since ?? "-", short(n.failed),
        (n.version ?? "-") + (n.caution ? " !" : "")])];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    for (const row of rows) out.push("  " + row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
    if (r.cautions.length) out.push(`  ! ${r.cautions.length} of ${r.nodes.length} may deploy out of turn:`);
    for (const n of r.nodes) if (n.caution) out.push(`    ${n.instance}: ${cautionText(n.caution, n.version, v.minVersion)}`);
  }
  return out.join("\n") + "\n";
}
