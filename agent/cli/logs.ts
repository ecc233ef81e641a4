import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent logs PROCESS [-f] [--config FILE]

a process's log.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent logs web -f
`;

export const logs = notYet("logs", "a process's log", help, "process logs");
