// Where the node's settings are, and how the daemon reads them without loading yaml and zod: the
// config is parsed by `agent _config FILE` (a child started from the agent's own binary, which
// prints the parsed config as JSON), so the parser's pages never stay in the daemon's RSS
// (test/unit/daemon-imports.test.ts). One-shot commands parse in their own process (config.ts).
import { AgentError } from "../core/errors.ts";
import { selfCommand } from "../host/self.ts";
import type { Config } from "../manifest/schema.ts";
import type { Trust } from "../trust/trust.ts";

export const DEFAULT_CONFIG = "/etc/agent/agent.yaml";

export function configPath(flag?: string): string {
  return flag ?? process.env.AGENT_CONFIG ?? DEFAULT_CONFIG;
}

/**
 * The node's trusted keys when the config has `trust:`; a typo refuses the start (file:line).
 * trust/ is loaded only then: a node without trust: never maps it (test/unit/daemon-imports.test.ts).
 */
export async function loadTrust(config: Config): Promise<Trust | null> {
  return config.trust ? (await import("../trust/trust.ts")).Trust.load(config.trust) : null;
}

export type ConfigAnswer = { ok: true; value: Config & { path: string } } | { ok: false; error: { reason: string | null; message: string } };

/** The same as config.ts loadConfig (same errors), parsed in a child process. */
export async function loadConfigApart(flag?: string): Promise<Config & { path: string }> {
  const path = configPath(flag);
  const p = Bun.spawn([...selfCommand(), "_config", path], { stdin: "ignore", stdout: "pipe", stderr: "inherit" });
  const [text, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  let answer: ConfigAnswer;
  try { answer = JSON.parse(text) as ConfigAnswer; } catch {
    throw AgentError.terminal("ConfigInvalid", `reading the config ${path} failed: agent _config exited with code ${code} and no answer`);
  }
  if (answer.ok) return answer.value;
  throw answer.error.reason ? AgentError.terminal(answer.error.reason, answer.error.message) : new Error(answer.error.message);
}
