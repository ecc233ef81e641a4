// Loads the node's settings for a command: --config FILE, else $AGENT_CONFIG, else the default.
import { existsSync, readFileSync } from "node:fs";
import { AgentError } from "../core/errors.ts";
import { formatProblem, parseConfig } from "../manifest/parse.ts";
import type { Config } from "../manifest/schema.ts";
import { Trust } from "../trust/trust.ts";

export const DEFAULT_CONFIG = "/etc/agent/agent.yaml";

export function configPath(flag?: string): string {
  return flag ?? process.env.AGENT_CONFIG ?? DEFAULT_CONFIG;
}

/** Read and validate the config; throws AgentError (terminal) with every problem on its own line. */
export function loadConfig(flag?: string): Config & { path: string } {
  const path = configPath(flag);
  if (!existsSync(path)) {
    throw AgentError.terminal("ConfigMissing",
      `no config at ${path}: pass --config FILE or set AGENT_CONFIG (scripts/bootstrap writes ${DEFAULT_CONFIG})`);
  }
  const parsed = parseConfig(readFileSync(path, "utf8"), path);
  if (!parsed.ok) {
    throw AgentError.terminal("ConfigInvalid", `invalid config:\n${parsed.problems.map(formatProblem).join("\n")}`);
  }
  return { ...parsed.value, path };
}

/** The node's trusted keys when the config has `trust:`; a typo refuses the start (file:line). */
export async function loadTrust(config: Config): Promise<Trust | null> {
  return config.trust ? Trust.load(config.trust) : null;
}
