import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent sync [--config FILE]

ask the daemon to poll the repository now.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent sync
`;

export const sync = notYet("sync", "ask the daemon to poll the repository now", help, "the control socket");
