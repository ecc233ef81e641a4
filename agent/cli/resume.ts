import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent resume [--config FILE]

start converging again after pause.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent resume
`;

export const resume = notYet("resume", "start converging again after pause", help, "the control socket");
