// `agent history`: the releases this node ran, newest first, with their state, when, and how they
// ended. Reads meta/history.jsonl in the state directory; changes nothing.
import { existsSync } from "node:fs";
import { formatDuration } from "../core/duration.ts";
import { AgentError, UsageError } from "../core/errors.ts";
import { dim, green, red, useColor, yellow } from "../core/term.ts";
import { layout } from "../state/layout.ts";
import { readHistory, type HistoryEntry } from "../state/releases.ts";
import { CONFIG_HELP, CONFIG_OPTION, EXIT, parse, type Command } from "./command.ts";
import { loadConfig } from "./config.ts";

const help = `Usage: agent history [--json] [--config FILE | --state-dir DIR]

The releases this node ran, newest first: commit, subject, state (preparing, ready, active,
good, failed), when, and for a failed one the reason and the message (with the log's path).
"*" marks the release \`current\` points at; "kept" says its directory is still on disk.

Options:
      --json           print the list as JSON
${CONFIG_HELP}
      --state-dir DIR  read this state directory instead of the config's stateDir
  -h, --help           show this help

Examples:
  agent history
  agent history --json | jq -r '.[] | select(.state == "failed") | .commit'
`;

export const history: Command = {
  name: "history",
  summary: "releases this node ran, when, and how they ended",
  help,
  async run(argv) {
    const a = parse(argv, { ...CONFIG_OPTION, json: { type: "boolean" }, "state-dir": { type: "string" } });
    if (a.values.config && a.values["state-dir"]) throw new UsageError("pass --config or --state-dir, not both");
    let stateDir = a.values["state-dir"];
    if (!stateDir) {
      try { stateDir = loadConfig(a.values.config).stateDir; }
      catch (e) { if (e instanceof AgentError) { process.stderr.write(`agent history: ${e.message}\n`); return EXIT.failed; } throw e; }
    }
    if (!existsSync(stateDir)) {
      process.stderr.write(`agent history: no state directory at ${stateDir}; has the agent run on this node? (or pass --state-dir)\n`);
      return EXIT.failed;
    }
    const entries = readHistory(layout(stateDir));
    if (a.values.json) { process.stdout.write(JSON.stringify(entries, null, 2) + "\n"); return EXIT.ok; }
    if (!entries.length) { process.stdout.write("no releases yet\n"); return EXIT.ok; }
    process.stdout.write(renderHistory(entries, Date.now(), useColor()) + "\n");
    return EXIT.ok;
  },
};

/** Pure: one line per release (and an indented reason line for a failed one). */
export function renderHistory(entries: HistoryEntry[], now: number, color: boolean): string {
  const paint = (s: HistoryEntry["state"]) => (s === "good" || s === "active" ? green : s === "failed" ? red : yellow)(color, s.padEnd(9));
  const lines: string[] = [];
  for (const e of entries) {
    const ago = formatDuration(Math.max(0, now - e.lastAt));
    lines.push(`${e.current ? "*" : " "} ${e.commit.slice(0, 12)}  ${paint(e.state)} ${new Date(e.lastAt).toISOString()} (${ago} ago)  ${e.subject ?? ""}${e.kept ? "" : dim(color, "  (pruned)")}`);
    if (e.state === "failed" && (e.reason || e.message)) lines.push(`    ${e.reason ?? ""}: ${e.message ?? ""}`);
  }
  return lines.join("\n");
}
