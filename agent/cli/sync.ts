// `agent sync`, and the shape every control command shares: one request to the daemon, its
// message printed, exit 0 when accepted, 1 when refused, 69 when no daemon answers.
import { isDaemonUnavailable, controlRequest } from "../control/client.ts";
import { layout } from "../state/layout.ts";
import { CONFIG_HELP, EXIT, parse, type Command } from "./command.ts";
import { STATE_DIR_OPTION, stateDirOf, timeoutOf } from "./status.ts";

export const CONTROL_OPTIONS_HELP = `      --json           print the daemon's answer as JSON
${CONFIG_HELP}
      --state-dir DIR  talk to the daemon whose stateDir is DIR instead of the config's
      --timeout DUR    how long to wait for the answer`;

/**
 * A command that POSTs to path and prints the answer. body(positionals) builds the request body;
 * it throws UsageError for bad arguments.
 */
export function controlCommand(spec: {
  name: string; summary: string; help: string; path: string; timeoutMs: number;
  positionals?: boolean; body?: (positionals: string[], flags: Record<string, unknown>) => unknown;
  /** Extra boolean flags of the command (passed to body). */
  flags?: string[];
  /** A flag that makes the default timeout longer (pause --drain waits for draining). */
  flagTimeoutMs?: Record<string, number>;
}): Command {
  return {
    name: spec.name,
    summary: spec.summary,
    help: spec.help,
    async run(argv) {
      const extra = Object.fromEntries((spec.flags ?? []).map((f) => [f, { type: "boolean" as const }]));
      const a = parse(argv, { ...STATE_DIR_OPTION, json: { type: "boolean" }, ...extra }, spec.positionals ?? false);
      const body = spec.body?.(a.positionals, a.values as Record<string, unknown>);
      const longer = Object.entries(spec.flagTimeoutMs ?? {}).filter(([f]) => (a.values as Record<string, unknown>)[f]).map(([, ms]) => ms);
      const timeoutMs = timeoutOf(a.values.timeout, Math.max(spec.timeoutMs, ...longer));
      const socket = layout(stateDirOf(a.values)).socket;
      let res;
      try {
        res = await controlRequest(socket, "POST", spec.path, body, { timeoutMs });
      } catch (e) {
        if (!isDaemonUnavailable(e)) throw e;
        process.stderr.write(`agent ${spec.name}: ${(e as Error).message}.\n`);
        return EXIT.unavailable;
      }
      const answer = res.body ?? {};
      const ok = res.status === 200 && (answer.accepted === true || answer.ok === true);
      if (a.values.json) {
        process.stdout.write(JSON.stringify(answer, null, 2) + "\n");
      } else if (typeof answer.error === "string") {
        process.stderr.write(`agent ${spec.name}: ${answer.error}${answer.reason ? ` (${answer.reason})` : ""}\n`);
      } else {
        (ok ? process.stdout : process.stderr).write(`${answer.message ?? `the agent answered ${res.status}`}\n`);
      }
      return ok ? EXIT.ok : EXIT.failed;
    },
  };
}

const help = `Usage: agent sync [--json] [--config FILE] [--state-dir DIR] [--timeout DUR]

Ask the daemon to poll the repository now instead of waiting for the next poll. The daemon
answers at once; if a poll is already running, both requests share it. Follow the result with
\`agent status\`.

Exit code: 0 accepted, 1 refused, 69 when the daemon is not running or does not answer.

Options:
${CONTROL_OPTIONS_HELP} (default 10s)
  -h, --help           show this help

Examples:
  agent sync
  agent sync && agent status
`;

export const sync = controlCommand({
  name: "sync", summary: "ask the daemon to poll the repository now", help, path: "/v1/sync", timeoutMs: 10_000,
});
