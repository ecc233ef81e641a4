// A problem found in an ops file, and how it reads. Apart from parse.ts so that code which only
// shows problems (the daemon's tick) does not load yaml and zod (test/unit/daemon-imports.test.ts).

export interface Problem {
  file: string;
  line: number;       // 1-based; 0 when unknown
  column: number;     // 1-based; 0 when unknown
  path: string;       // "processes.web.run"; "" for the whole file
  message: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

export function formatProblem(p: Problem): string {
  const where = p.line ? `${p.file}:${p.line}:${p.column}` : p.file;
  return `${where}: ${p.path ? p.path + ": " : ""}${p.message}`;
}

/** The longest value an environment variable may hold (manifest `env:` and secrets). */
export const MAX_ENV_VALUE = 32 * 1024;
