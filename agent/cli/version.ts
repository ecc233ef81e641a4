import { VERSION, BUILD_COMMIT } from "../core/version.ts";
import { EXIT, parse, type Command } from "./command.ts";

const help = `Usage: agent version [--json]

Print the agent's version and the git commit it was built from.

Example:
  agent version
  agent version --json | jq -r .commit
`;

export const version: Command = {
  name: "version",
  summary: "version and build commit",
  help,
  async run(argv) {
    const a = parse(argv, { json: { type: "boolean" } });
    if (a.values.json) process.stdout.write(JSON.stringify({ version: VERSION, commit: BUILD_COMMIT, bun: Bun.version }) + "\n");
    else process.stdout.write(`agent ${VERSION} (commit ${BUILD_COMMIT}, bun ${Bun.version})\n`);
    return EXIT.ok;
  },
};
