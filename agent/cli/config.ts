// Loads the node's settings for a command: --config FILE, else $AGENT_CONFIG, else the default.
import { existsSync, readFileSync } from "node:fs";
import { AgentError, errorMessage } from "../core/errors.ts";
import { formatProblem, parseConfig } from "../manifest/parse.ts";
import type { Config } from "../manifest/schema.ts";
import { configPath, DEFAULT_CONFIG, type ConfigAnswer } from "./settings.ts";
export { configPath, DEFAULT_CONFIG, loadTrust } from "./settings.ts";

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

/** `agent _config FILE` (hidden): the parsed config, or its error, as JSON on stdout (settings.ts). */
export function serveConfig(path: string): number {
  let answer: ConfigAnswer;
  try { answer = { ok: true, value: loadConfig(path) }; } catch (e) {
    answer = { ok: false, error: { reason: e instanceof AgentError ? e.reason : null, message: errorMessage(e) } };
  }
  process.stdout.write(JSON.stringify(answer));
  return 0;
}
