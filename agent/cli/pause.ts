// `agent pause`: the daemon stops converging; processes keep running and stay supervised.
import { controlCommand, CONTROL_OPTIONS_HELP } from "./sync.ts";

const help = `Usage: agent pause [--drain] [--json] [--config FILE] [--state-dir DIR] [--timeout DUR]

Stop converging: the daemon keeps supervising the running processes (restarts, health) but
does not fetch, deploy or roll back until \`agent resume\`. The pause survives a restart of the
agent. \`agent status\` shows phase "paused".

With --drain, the node first leaves its load balancer target groups (roles.<role>.targetGroups)
and waits until they no longer drain it (at most each group's drain, 30s by default); then it
answers. \`agent resume\` registers it again once its processes are healthy.

Exit code: 0 paused, 1 refused, 69 when the daemon is not running or does not answer.

Options:
      --drain          leave the target groups and wait for draining first
${CONTROL_OPTIONS_HELP} (default 10s, 90s with --drain)
  -h, --help           show this help

Examples:
  agent pause            # before poking at the node by hand
  agent pause --drain    # take the node out of the load balancer first
  agent resume           # when done
`;

export const pause = controlCommand({
  name: "pause", summary: "stop converging (processes keep running)", help, path: "/v1/pause", timeoutMs: 10_000,
  flags: ["drain"], flagTimeoutMs: { drain: 90_000 }, body: (_, f) => (f.drain ? { drain: true } : undefined),
});
