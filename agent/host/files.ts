// Atomic file operations. A reader never sees a half-written file or a missing link.
import { closeSync, constants, fsyncSync, openSync, renameSync, symlinkSync, unlinkSync, writeSync, mkdirSync } from "node:fs";
import { dirname, basename, join } from "node:path";

let seq = 0;
const tmpName = (path: string) => join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${++seq}`);

/**
 * Write a file so that readers see the old or the new content, never a mix: temp + fsync +
 * rename(2) + fsync of the directory (so the new content is there after a power cut too).
 * On failure (ENOSPC …) the old content stays, no temp file is left, and it throws.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tmpName(path);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, mode);   // never through a link
  try {
    try {
      writeSync(fd, typeof data === "string" ? Buffer.from(data) : data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try { unlinkSync(tmp); } catch {}   // a full disk must not also fill up with temp files
    throw e;
  }
  syncDir(dirname(path));
}

/** Point `link` at `target` atomically: symlink to a temp name, rename(2) over the old link, fsync the directory. */
export function switchSymlink(link: string, target: string): void {
  const tmp = tmpName(link);
  symlinkSync(target, tmp);
  try {
    renameSync(tmp, link);
  } catch (e) {
    try { unlinkSync(tmp); } catch {}
    throw e;
  }
  syncDir(dirname(link));
}

/**
 * fsync a directory, so that a rename(2) into it survives a power cut (the rename lives in the
 * directory, not in the file). File systems that cannot sync a directory (EINVAL) are skipped.
 */
export function syncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try { fsyncSync(fd); } catch (e) {
    if (!["EINVAL", "ENOTSUP", "EOPNOTSUPP"].includes((e as { code?: string }).code ?? "")) throw e;
  } finally { closeSync(fd); }
}
