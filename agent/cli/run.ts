import { notYet, CONFIG_HELP } from "./command.ts";

const help = `Usage: agent run [--config FILE]

run the daemon: reconcile forever, supervise processes, serve the control socket.

Options:
${CONFIG_HELP}
  -h, --help         show this help

Example:
  agent run --config /etc/agent/agent.yaml
`;

export const run = notYet("run", "run the daemon: reconcile forever, supervise processes, serve the control socket", help, "the reconcile daemon");
