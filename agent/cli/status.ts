// `agent status`: what the node runs and wants. Asks the daemon; when it does not answer, reads
// status.json and says how old it is. Exit 0 converged and healthy, 1 otherwise, 69 no status.
import { AgentError } from "../core/errors.ts";
import { parseDuration } from "../core/duration.ts";
import { useColor } from "../core/term.ts";
import { layout } from "../state/layout.ts";
import { findProblems, statusExitCode } from "../status/problems.ts";
import { readStatus } from "../status/read.ts";
import { renderStatus } from "../status/render.ts";
import { CONFIG_HELP, CONFIG_OPTION, EXIT, parse, type Command } from "./command.ts";
import { loadConfig } from "./config.ts";
import { readFleet, renderFleet } from "./fleet.ts";
import { UsageError } from "../core/errors.ts";

const help = `Usage: agent status [--json] [--fleet] [--config FILE] [--state-dir DIR]

What the node runs and wants: role, environment, desired and current commit, the last tick,
each resource and process. Problems come first, in plain words. Asks the running daemon; when
it does not answer within the timeout, shows the status.json of the last tick and its age.

Exit code: 0 converged and healthy; 1 anything else (deploying, paused, degraded, failed, a
problem); 69 when neither the daemon nor status.json is available.

Options:
      --json           print the status as JSON (with "source", "ageMs" and "problems")
      --fleet          the environment's rollout instead: per role its wave and state, per node
                       its wave, commit, state, since, failed commit and agent version, with a !
                       on agents that may deploy out of turn (one DescribeInstances)
${CONFIG_HELP}
      --state-dir DIR  read the socket and status.json here instead of the config's stateDir
      --timeout DUR    how long to wait for the daemon (default 2s)
  -h, --help           show this help

Examples:
  agent status
  agent status --json | jq -r .current.commit
  agent status --state-dir /tmp/agent-dev
  agent status --fleet
`;

/** --config/--state-dir options shared by the commands that talk to the daemon. */
export const STATE_DIR_OPTION = { ...CONFIG_OPTION, "state-dir": { type: "string" }, timeout: { type: "string" } } as const;

/** The state directory: --state-dir, else the config's stateDir. */
export function stateDirOf(values: { config?: string; "state-dir"?: string }): string {
  return values["state-dir"] ?? loadConfig(values.config).stateDir;
}

/** --timeout as milliseconds, or the default. */
export function timeoutOf(text: string | undefined, fallbackMs: number): number {
  if (text === undefined) return fallbackMs;
  const ms = parseDuration(text);
  if (ms === undefined || ms <= 0) throw new UsageError(`--timeout takes a duration such as 2s or 500ms, not '${text}'`);
  return ms;
}

export const status: Command = {
  name: "status",
  summary: "what the node runs and wants, per resource and process",
  help,
  async run(argv) {
    const a = parse(argv, { ...STATE_DIR_OPTION, json: { type: "boolean" }, fleet: { type: "boolean" } });
    if (a.values.fleet) {
      const v = await readFleet(loadConfig(a.values.config));
      process.stdout.write(a.values.json ? JSON.stringify(v, null, 2) + "\n" : renderFleet(v));
      return v.roles.every((r) => r.state === "done") ? EXIT.ok : EXIT.failed;
    }
    const timeoutMs = timeoutOf(a.values.timeout, 2000);
    const l = layout(stateDirOf(a.values));
    let reading;
    try {
      reading = await readStatus({ socket: l.socket, statusFile: l.statusFile }, { timeoutMs, now: Date.now });
    } catch (e) {
      if (e instanceof AgentError && e.reason === "StatusUnavailable") {
        process.stderr.write(`agent status: ${e.message}.\n`);
        return EXIT.unavailable;
      }
      throw e;
    }
    const view = { now: Date.now(), source: reading.source, ageMs: reading.ageMs };
    if (a.values.json) {
      const out = { ...reading.status, source: reading.source, ageMs: reading.ageMs, problems: findProblems(reading.status, view) };
      process.stdout.write(JSON.stringify(out, null, 2) + "\n");
    } else {
      process.stdout.write(renderStatus(reading.status, { ...view, color: useColor(process.stdout) }));
    }
    return statusExitCode(reading.status, view);
  },
};
