import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent rollback [COMMIT] [--config FILE]

run the previous good release (or COMMIT) until the manifest pins another commit.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent rollback
`;

export const rollback = notYet("rollback", "run the previous good release (or COMMIT) until the manifest pins another commit", help, "rollback");
