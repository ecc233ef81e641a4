// Log rotation by size for files a child holds open with O_APPEND: copy-truncate
// (web.log -> web.log.1 -> web.log.2 ...), because the child's fd cannot be re-pointed.
// Lines written between the copy and the truncate are lost; that window is one copy long.
// On a full disk the copy fails: the live log is truncated anyway (its content is lost, the
// disk stops filling) and the rotations already kept are left as they are.
import { copyFileSync, renameSync, rmSync, statSync, truncateSync } from "node:fs";

export interface RotationPolicy {
  maxBytes: number;        // rotate once the live file reaches this size
  keep: number;            // rotated files kept: .1 (newest) ... .keep
}

export const DEFAULT_ROTATION: RotationPolicy = { maxBytes: 50 * 1024 * 1024, keep: 5 };

/** Told once per log file and condition (an error code) until a rotation of that file succeeds again. */
export type RotationWarn = (message: string, fields: Record<string, unknown>) => void;

const warned = new Map<string, Set<string>>();

/**
 * Rotate `path` when it is at least maxBytes. Returns true when the live file was truncated.
 * Safe to call often: the copy goes to a temp name first, so a failed copy (ENOSPC) shifts and
 * deletes nothing; the live file is truncated anyway, so a full disk never keeps a log growing.
 * Each failing condition reaches `warn` once per file, not at every call.
 */
export function rotateIfNeeded(path: string, p: RotationPolicy, warn: RotationWarn = () => {}): boolean {
  let size: number;
  try { size = statSync(path).size; } catch { return false; }
  if (size < p.maxBytes) return false;
  let copied = p.keep <= 0;
  if (p.keep > 0) {
    const tmp = `${path}.rotating`;
    try {
      copyFileSync(path, tmp);
      copied = true;
    } catch (e) {
      rmSync(tmp, { force: true });
      once(path, code(e), warn, "log rotation could not copy the log (the disk is full?): truncating it without keeping this part; the older rotations are kept; free space in the log directory",
        { file: path, bytesLost: size, error: code(e) });
    }
    if (copied) {
      rmSync(`${path}.${p.keep}`, { force: true });
      for (let i = p.keep - 1; i >= 1; i--) {
        try { renameSync(`${path}.${i}`, `${path}.${i + 1}`); } catch {}
      }
      renameSync(tmp, `${path}.1`);
    }
  }
  // The writer's O_APPEND fd continues at the new end (0), so the file does not turn sparse.
  try { truncateSync(path, 0); } catch (e) {
    once(path, `truncate:${code(e)}`, warn, "log rotation could not truncate the log; it keeps growing", { file: path, error: code(e) });
    return false;
  }
  if (copied) warned.delete(path);
  return true;
}

function once(path: string, condition: string, warn: RotationWarn, message: string, fields: Record<string, unknown>): void {
  const seen = warned.get(path) ?? warned.set(path, new Set()).get(path)!;
  if (seen.has(condition)) return;
  seen.add(condition);
  warn(message, fields);
}

const code = (e: unknown) => (e as { code?: string }).code ?? String(e);
