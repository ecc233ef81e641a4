// What every command looks like: a name, a one-line summary, usage with an example, and run().
// run() returns the exit code; it throws UsageError for a usage mistake (exit 2).
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../core/errors.ts";

export interface Command {
  name: string;
  summary: string;
  /** Full help: usage line, description, options, at least one example. */
  help: string;
  run(argv: string[]): Promise<number>;
}

export const EXIT = {
  ok: 0,
  failed: 1,          // the command ran and the answer is "no" (invalid file, not converged, ...)
  usage: 2,           // the command line is wrong
  unavailable: 69,    // the daemon is not reachable
  busy: 75,           // another agent holds the state directory (EX_TEMPFAIL: try again later)
} as const;

/** parseArgs that turns its errors into UsageError (main.ts answers --help before a command runs). */
export function parse<T extends NonNullable<ParseArgsConfig["options"]>>(
  argv: string[],
  options: T,
  allowPositionals = false,
) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message.replace(/\. To specify a positional.*$/s, "") : String(e));
  }
}

/** The shared options every command that reads the node's config takes. */
export const CONFIG_OPTION = { config: { type: "string", short: "c" } } as const;
export const CONFIG_HELP = `  -c, --config FILE  the node's settings (default: $AGENT_CONFIG or /etc/agent/agent.yaml)`;
