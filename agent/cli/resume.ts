// `agent resume`: the daemon converges again after `agent pause`.
import { controlCommand, CONTROL_OPTIONS_HELP } from "./sync.ts";

const help = `Usage: agent resume [--json] [--config FILE] [--state-dir DIR] [--timeout DUR]

Converge again after \`agent pause\`: from the next tick the daemon deploys what the manifest pins.

Exit code: 0 resumed, 1 refused, 69 when the daemon is not running or does not answer.

Options:
${CONTROL_OPTIONS_HELP} (default 10s)
  -h, --help           show this help

Example:
  agent resume && agent status
`;

export const resume = controlCommand({
  name: "resume", summary: "start converging again after pause", help, path: "/v1/resume", timeoutMs: 10_000,
});
