import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent history [--json] [--config FILE]

releases this node ran, when, and how they ended.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent history --json
`;

export const history = notYet("history", "releases this node ran, when, and how they ended", help, "release history");
