// Structured logs: one JSON object per line when stdout is not a terminal (journald reads it),
// a readable line on a terminal. Every line names its component first.

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(component: string): Logger;
}

export interface LogOptions {
  level?: Level;
  json?: boolean;                      // default: not a terminal
  write?: (line: string) => void;      // default: stderr
  now?: () => number;
}

export function createLogger(component: string, opts: LogOptions = {}): Logger {
  const level = opts.level ?? ((process.env.AGENT_LOG_LEVEL as Level | undefined) ?? "info");
  const json = opts.json ?? !process.stderr.isTTY;
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const now = opts.now ?? Date.now;
  const emit = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    if (json) {
      write(JSON.stringify({ time: new Date(now()).toISOString(), level: lvl, component, msg, ...fields }));
    } else {
      const extra = fields && Object.keys(fields).length
        ? " " + Object.entries(fields).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ")
        : "";
      write(`${lvl.padEnd(5)} ${component}: ${msg}${extra}`);
    }
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (c) => createLogger(`${component}.${c}`, { ...opts, level, json, write, now }),
  };
}

/** A logger that keeps lines in memory: for tests. */
export function memoryLogger(lines: string[] = []): Logger & { lines: string[] } {
  const l = createLogger("test", { json: true, level: "debug", write: (s) => lines.push(s) });
  return Object.assign(l, { lines });
}
