// `agent rollback [COMMIT]`: run the previous good release (or COMMIT) on this node until the
// manifest pins another commit.
import { UsageError } from "../core/errors.ts";
import { controlCommand, CONTROL_OPTIONS_HELP } from "./sync.ts";

const help = `Usage: agent rollback [COMMIT] [--json] [--config FILE] [--state-dir DIR] [--timeout DUR]

Run the previous good release on this node, or COMMIT (a commit id, 4 to 40 hex characters),
until the manifest pins another commit. The command waits for the daemon's answer. For the
whole fleet, revert the manifest change in git instead: that is the lasting rollback.

Exit code: 0 rolled back, 1 refused or failed (the message says why), 69 when the daemon is
not running or does not answer.

Options:
${CONTROL_OPTIONS_HELP} (default 5m)
  -h, --help           show this help

Examples:
  agent rollback                 # the previous good release
  agent rollback 9fceb02d0ae5    # a specific commit this node can fetch
`;

export const rollback = controlCommand({
  name: "rollback",
  summary: "run the previous good release (or COMMIT) until the manifest pins another commit",
  help, path: "/v1/rollback", timeoutMs: 5 * 60_000, positionals: true,
  body: (args) => {
    if (args.length > 1) throw new UsageError("rollback takes at most one COMMIT");
    const commit = args[0]?.toLowerCase();
    if (commit !== undefined && !/^[0-9a-f]{4,40}$/.test(commit)) throw new UsageError(`'${args[0]}' is not a commit id (4 to 40 hex characters)`);
    return commit === undefined ? {} : { commit };
  },
});
