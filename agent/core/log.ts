// Structured logs: one JSON object per line when stderr is not a terminal (journald reads it),
// a readable line on a terminal. Every line names its component first.
import { useColor, red, yellow, dim } from "./term.ts";

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
  /** Text form only: colour the level (default: stderr is a terminal and NO_COLOR is unset). */
  color?: boolean;
  /** Text form only: start lines with the time (default: not under systemd, which stamps lines itself). */
  time?: boolean;
}

/** Values JSON.stringify would lose: an Error becomes its message (and reason), a bigint a string. */
function plain(_key: string, v: unknown): unknown {
  if (v instanceof Error) {
    const reason = (v as { reason?: unknown }).reason;
    return typeof reason === "string" ? { reason, message: v.message } : v.message;
  }
  return typeof v === "bigint" ? v.toString() : v;
}

const CORE_KEYS = new Set(["time", "level", "component", "msg"]);

/** Fields never overwrite time/level/component/msg: a clashing key is kept as "field.<key>". */
function safeFields(fields?: Record<string, unknown>): Record<string, unknown> | undefined {
  if (!fields || !Object.keys(fields).some((k) => CORE_KEYS.has(k))) return fields;
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [CORE_KEYS.has(k) ? `field.${k}` : k, v]));
}

export function createLogger(component: string, opts: LogOptions = {}): Logger {
  const level = opts.level ?? ((process.env.AGENT_LOG_LEVEL as Level | undefined) ?? "info");
  const json = opts.json ?? !process.stderr.isTTY;
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const now = opts.now ?? Date.now;
  const color = opts.color ?? useColor(process.stderr);
  const time = opts.time ?? !process.env.INVOCATION_ID;
  const emit = (lvl: Level, msg: string, rawFields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    const fields = safeFields(rawFields);
    if (json) {
      write(JSON.stringify({ time: new Date(now()).toISOString(), level: lvl, component, msg, ...fields }, plain));
    } else {
      const extra = fields && Object.keys(fields).length
        ? " " + Object.entries(fields).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v, plain)}`).join(" ")
        : "";
      const tag = lvl === "error" ? red(color, lvl.padEnd(5)) : lvl === "warn" ? yellow(color, lvl.padEnd(5)) : lvl.padEnd(5);
      const stamp = time ? dim(color, new Date(now()).toISOString().slice(11, 23)) + " " : "";
      write(`${stamp}${tag} ${component}: ${msg}${extra}`);
    }
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (c) => createLogger(`${component}.${c}`, { ...opts, level, json, write, now, color, time }),
  };
}

/** A logger that keeps lines in memory: for tests. */
export function memoryLogger(lines: string[] = []): Logger & { lines: string[] } {
  const l = createLogger("test", { json: true, level: "debug", write: (s) => lines.push(s) });
  return Object.assign(l, { lines });
}
