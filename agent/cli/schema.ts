import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent schema [manifest|role|config]

JSON Schema of the three files, for editors.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent schema > agent.schema.json
`;

export const schema = notYet("schema", "JSON Schema of the three files, for editors", help, "the JSON Schema");
