import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent once [--config FILE]

one reconcile tick in the foreground; exit 0 when converged.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent once && echo converged
`;

export const once = notYet("once", "one reconcile tick in the foreground; exit 0 when converged", help, "a one-shot reconcile");
