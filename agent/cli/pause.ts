import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent pause [--config FILE]

stop converging (processes keep running).

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent pause
`;

export const pause = notYet("pause", "stop converging (processes keep running)", help, "the control socket");
