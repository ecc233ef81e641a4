// One node of a multi-agent fleet test: its own IMDS identity, state dir and config, the agent
// daemon it runs, and how to read its status. Shared by test/e2e/fleet*.test.ts.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { ImdsServer } from "../servers/imds.ts";

/** Credentials from the test's environment must not reach the agents (the stand-ins take any). */
export const NO_KEYS = { AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined };

export interface FleetNode { id: string; imds: ImdsServer; state: string; config: string; daemon: Subprocess | null }

/** The environment an agent of node `n` runs with: its config, no colour, no AWS keys. */
export const envOf = (n: FleetNode): Record<string, string> => {
  const env: Record<string, string | undefined> = { ...process.env, AGENT_CONFIG: n.config, NO_COLOR: "1", ...NO_KEYS };
  for (const [key, v] of Object.entries(env)) if (v === undefined) delete env[key];
  return env as Record<string, string>;
};

/** The node's status.json, or null while it has none (or it is being rewritten). */
export const statusOf = (n: FleetNode): any => { try { return JSON.parse(readFileSync(join(n.state, "status.json"), "utf8")); } catch { return null; } };

/**
 * Give each node its state dir and config: node 0 uses the kit's own, the others a copy of it
 * with their state dir and IMDS endpoint.
 */
export function placeNodes(k: { config: string; state: string; dir: string }, nodes: FleetNode[]): void {
  const base = readFileSync(k.config, "utf8");
  for (const [i, n] of nodes.entries()) {
    n.state = i === 0 ? k.state : join(k.dir, `state-${i}`);
    n.config = i === 0 ? k.config : join(k.dir, `agent-${i}.yaml`);
    if (i > 0) writeFileSync(n.config, base.replace(`stateDir: ${k.state}`, `stateDir: ${n.state}`).replace(nodes[0]!.imds.url, n.imds.url));
  }
}
