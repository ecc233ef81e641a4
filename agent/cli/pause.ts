// `agent pause`: the daemon stops converging; processes keep running and stay supervised.
import { controlCommand, CONTROL_OPTIONS_HELP } from "./sync.ts";

const help = `Usage: agent pause [--json] [--config FILE] [--state-dir DIR] [--timeout DUR]

Stop converging: the daemon keeps supervising the running processes (restarts, health) but
does not fetch, deploy or roll back until \`agent resume\`. The pause survives a restart of the
agent. \`agent status\` shows phase "paused".

Exit code: 0 paused, 1 refused, 69 when the daemon is not running or does not answer.

Options:
${CONTROL_OPTIONS_HELP} (default 10s)
  -h, --help           show this help

Examples:
  agent pause            # before poking at the node by hand
  agent resume           # when done
`;

export const pause = controlCommand({
  name: "pause", summary: "stop converging (processes keep running)", help, path: "/v1/pause", timeoutMs: 10_000,
});
