// Log rotation by size for files a child holds open with O_APPEND: copy-truncate
// (web.log -> web.log.1 -> web.log.2 ...), because the child's fd cannot be re-pointed.
// Lines written between the copy and the truncate are lost; that window is one copy long.
import { copyFileSync, renameSync, rmSync, statSync, truncateSync } from "node:fs";

export interface RotationPolicy {
  maxBytes: number;        // rotate once the live file reaches this size
  keep: number;            // rotated files kept: .1 (newest) ... .keep
}

export const DEFAULT_ROTATION: RotationPolicy = { maxBytes: 50 * 1024 * 1024, keep: 5 };

/** Rotate `path` when it is at least maxBytes. Returns true when it rotated. Safe to call often. */
export function rotateIfNeeded(path: string, p: RotationPolicy): boolean {
  let size: number;
  try { size = statSync(path).size; } catch { return false; }
  if (size < p.maxBytes) return false;
  if (p.keep > 0) {
    rmSync(`${path}.${p.keep}`, { force: true });
    for (let i = p.keep - 1; i >= 1; i--) {
      try { renameSync(`${path}.${i}`, `${path}.${i + 1}`); } catch {}
    }
    copyFileSync(path, `${path}.1`);
  }
  // The writer's O_APPEND fd continues at the new end (0), so the file does not turn sparse.
  truncateSync(path, 0);
  return true;
}
