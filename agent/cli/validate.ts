import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent validate [DIR]

check manifests/ and roles/ of a checkout.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent validate .
`;

export const validate = notYet("validate", "check manifests/ and roles/ of a checkout", help, "validation");
