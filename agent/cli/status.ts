import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent status [--json] [--config FILE]

what the node runs and wants, per resource and process.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent status --json | jq .phase
`;

export const status = notYet("status", "what the node runs and wants, per resource and process", help, "status");
