// Shared by the sample app's programs: which release they run from, and a timestamped log line.
// The agent starts processes in releases/<commit>/; AGENT_COMMIT, when set, wins.
import { basename } from "node:path";

export function release(): string {
  return process.env.AGENT_COMMIT || basename(process.cwd());
}

export function log(program: string, message: string): void {
  console.log(`${new Date().toISOString()} ${program} ${message}`);
}
