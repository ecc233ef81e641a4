// `agent logs PROCESS [-f] [-n N]`: print a supervised process's log from <stateDir>/logs, and
// with -f keep printing as it grows, across copy-truncate rotations. Read-only.
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { parse, CONFIG_OPTION, CONFIG_HELP, EXIT, type Command } from "./command.ts";
import { loadConfig } from "./config.ts";
import { layout } from "../state/layout.ts";
import { UsageError } from "../core/errors.ts";

const help = `Usage: agent logs PROCESS [-f] [-n N] [--config FILE]

Print the log of a supervised process (<stateDir>/logs/PROCESS.log). Each instance has its
own: the ones after the first are PROCESS#1, PROCESS#2 ... (quote them: 'web#1'); rotated
files are PROCESS.log.1 (newest) and up.

Options:
  -f, --follow           keep printing new lines, across log rotations (Ctrl-C to stop)
  -n, --lines N          how many lines from the end to print first (default 100; 0 for none)
${CONFIG_HELP}
      --state-dir DIR    read DIR/logs instead of the config's stateDir
  -h, --help             show this help

Example:
  agent logs web -f -n 20
`;

/** Read [from, to) of a file; empty when the file is missing. */
function readRange(path: string, from: number, to: number): Buffer {
  if (to <= from) return Buffer.alloc(0);
  let fd: number;
  try { fd = openSync(path, "r"); } catch { return Buffer.alloc(0); }
  try {
    const buf = Buffer.alloc(to - from);
    const n = readSync(fd, buf, 0, buf.length, from);
    return buf.subarray(0, n);
  } finally { closeSync(fd); }
}

const sizeOf = (path: string) => { try { return statSync(path).size; } catch { return 0; } };

/**
 * The last n lines of the log up to byte `end` (its size by default), reaching into .1 when the
 * live file has too few.
 */
export function tailLines(path: string, n: number, end = sizeOf(path)): string {
  if (n <= 0) return "";
  const WINDOW = 4 << 20;
  const take = (p: string, size: number) => readRange(p, Math.max(0, size - WINDOW), size).toString("utf8");
  let text = take(path, end);
  if (text.split("\n").length - 1 < n) text = take(`${path}.1`, sizeOf(`${path}.1`)) + text;
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.slice(-n).map((l) => l + "\n").join("");
}

/** Known process names: the logs that exist. */
export function knownProcesses(logsDir: string): string[] {
  if (!existsSync(logsDir)) return [];
  return readdirSync(logsDir).filter((f) => f.endsWith(".log")).map((f) => f.slice(0, -4)).sort();
}

export const logs: Command = {
  name: "logs",
  summary: "a process's log",
  help,
  async run(argv) {
    const a = parse(argv, { ...CONFIG_OPTION, follow: { type: "boolean", short: "f" }, lines: { type: "string", short: "n" },
      "state-dir": { type: "string" } }, true);
    const name = a.positionals[0];
    if (!name || a.positionals.length > 1) throw new UsageError("give exactly one PROCESS, e.g. 'agent logs web'");
    const n = a.values.lines === undefined ? 100 : Number(a.values.lines);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`-n wants a whole number of lines, not '${a.values.lines}'`);
    const root = a.values["state-dir"] ?? loadConfig(a.values.config).stateDir;
    const l = layout(root);
    const file = l.processLog(name);
    if (!existsSync(file)) {
      const known = knownProcesses(l.logs);
      process.stderr.write(`agent logs: no log for process '${name}' in ${l.logs}; ${known.length
        ? `known processes: ${known.join(", ")}` : "no process has written a log yet (is the agent running here?)"}.\n`);
      return EXIT.failed;
    }
    // One size for both: what is appended after the tail was read is followed, not skipped.
    const end = sizeOf(file);
    process.stdout.write(tailLines(file, n, end));
    if (!a.values.follow) return EXIT.ok;
    await follow(file, end);
    return EXIT.ok;
  },
};

/**
 * Print what is appended to `file` until SIGINT/SIGTERM. The supervisor rotates by copy-truncate:
 * when the file shrinks, the rest of what we had not read yet is in .1, and the file starts anew.
 */
async function follow(file: string, from: number, everyMs = 200): Promise<void> {
  let pos = from;
  let stop = false;
  const quit = () => { stop = true; };
  process.once("SIGINT", quit); process.once("SIGTERM", quit);
  while (!stop) {
    const size = sizeOf(file);
    if (size < pos) {
      const rotated = `${file}.1`;
      if (sizeOf(rotated) >= pos) process.stdout.write(readRange(rotated, pos, sizeOf(rotated)));
      pos = 0;
    }
    if (size > pos) {
      const chunk = readRange(file, pos, Math.min(size, pos + (8 << 20)));
      process.stdout.write(chunk);
      pos += chunk.length;
      continue;
    }
    await Bun.sleep(everyMs);
  }
}
