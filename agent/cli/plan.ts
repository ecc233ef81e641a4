import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent plan [--json] [--config FILE]

what a tick would do now, changing nothing.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent plan
`;

export const plan = notYet("plan", "what a tick would do now, changing nothing", help, "planning");
