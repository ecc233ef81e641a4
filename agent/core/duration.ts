// Durations as operators write them ("30s", "2m", "500ms", "1h") and back again. Pure.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
export const DURATION_PATTERN = "^[0-9]+(ms|s|m|h)$";
const RE = new RegExp(DURATION_PATTERN);

/** "30s" -> 30000; undefined for anything else (the schema reports it). */
export function parseDuration(text: string): number | undefined {
  if (!RE.test(text)) return undefined;
  const m = /^([0-9]+)(ms|s|m|h)$/.exec(text)!;
  return Number(m[1]) * UNITS[m[2]!]!;
}

/** 90000 -> "1m30s": short, for status and logs. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  return [h ? `${h}h` : "", m ? `${m}m` : "", s || (!h && !m) ? `${s}s` : ""].join("");
}
